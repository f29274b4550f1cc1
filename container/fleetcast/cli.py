"""The `fleetcast` command: argument parsing only; each subcommand calls one function.

Heavy imports (prophet, pandas, flask) happen inside the subcommand, so `fleetcast --help` is instant.
Every parser is a `Parser`, whose help shows each option's default (`python -m launch` uses it too).
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def shows_default(action: argparse.Action) -> bool:
    """An option with a real default; None, False and empty mean "not given" and have none to show."""
    default = action.default
    if not action.option_strings or default is None or default is False or default is argparse.SUPPRESS:
        return False
    return default not in ("", [])


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Ends each option's help with "(default: X)", unless the help already explains its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if shows_default(action) and "default" not in text:
            text = f"{text} (default: %(default)s)".strip()
        return text

    def _format_action(self, action: argparse.Action) -> str:
        # argparse prints no help column for an option without help text: give it one for the default.
        if not action.help and shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults; add_subparsers makes its subcommands Parsers too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def package_version() -> str:
    from importlib.metadata import version

    return version("fleetcast")


def _generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write a seeded synthetic consumption CSV")
    p.add_argument("--customers", type=int, default=1000, help="number of customers (ids 0..N-1)")
    p.add_argument("--seed", type=int, default=42, help="random seed: the same seed writes the same CSV")
    p.add_argument("--out", type=Path, required=True, help="CSV file to write ('-' for stdout)")
    p.add_argument("--start", default="2022-01-01", help="first timestamp (inclusive), ISO date")
    p.add_argument("--end", default="2023-01-01", help="last timestamp (exclusive), ISO date")
    p.add_argument(
        "--rows-per-customer",
        type=int,
        default=365,
        help="rows per customer, at timestamps drawn from the grid",
    )
    p.add_argument("--freq", default="D", help="timestamp grid: D (daily) or a sub-daily pandas alias like h")
    p.add_argument(
        "--drivers",
        action="store_true",
        help="add a temperature column that drives consumption (heating/cooling degrees) and holiday dips",
    )
    p.add_argument("--country", default="US", help="with --drivers: the ISO code of the holiday calendar")

    def run(a: argparse.Namespace) -> int:
        from fleetcast.data.generate import generate_csv

        generate_csv(
            out=a.out,
            customers=a.customers,
            seed=a.seed,
            start=a.start,
            end=a.end,
            rows_per_customer=a.rows_per_customer,
            freq=a.freq,
            drivers=a.drivers,
            country=a.country,
        )
        return 0

    p.set_defaults(run=run)


def _split(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help="split raw CSVs into one file per customer (the Processing step)")
    p.add_argument(
        "--input",
        nargs="+",
        type=Path,
        default=None,
        help="CSV files or folders of CSVs (default: /opt/ml/processing/input, under SAGEMAKER_BASE_DIR)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: /opt/ml/processing/output, under SAGEMAKER_BASE_DIR)",
    )
    p.add_argument(
        "--reports",
        type=Path,
        default=None,
        help="folder for split_summary.json and the renamed ids, never inside --out (default: "
        "/opt/ml/processing/reports, or <out>-reports beside --out)",
    )
    p.add_argument("--buckets", type=int, default=0, help="write N part files of whole customers instead")
    p.add_argument("--chunk-rows", type=int, default=500_000, help="rows read per chunk (bounds memory)")
    p.add_argument(
        "--keep-columns",
        default=None,
        metavar="A,B",
        help="extra numeric columns to carry per customer, e.g. temperature ('' keeps none; default: "
        "every numeric column that every input file has)",
    )

    def run(a: argparse.Namespace) -> int:
        from fleetcast.data.split import split_main

        return split_main(
            inputs=a.input,
            out=a.out,
            buckets=a.buckets,
            chunk_rows=a.chunk_rows,
            reports=a.reports,
            keep_columns=a.keep_columns,
        )

    p.set_defaults(run=run)


def _train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="the SageMaker training entry point (reads /opt/ml)")

    def run(a: argparse.Namespace) -> int:
        from fleetcast.training.job import train_main

        return train_main()

    p.set_defaults(run=run)


def _local_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("local-train", help="emulate a sharded multi-instance SageMaker training job locally")
    p.add_argument("--data", type=Path, required=True, help="the training channel (split output)")
    p.add_argument("--hosts", type=int, default=2, help="training instances to emulate (algo-1..algo-N)")
    p.add_argument("--models", type=Path, required=True, help="stand-in for the checkpoint S3 prefix")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the per-host /opt/ml roots and report.csv go (default: <models>-local-train, "
        "beside --models)",
    )
    p.add_argument(
        "--hyperparameters",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="training hyperparameters, passed as strings as SageMaker does",
    )
    p.add_argument(
        "--run-id",
        default=None,
        help="the run's id, its folder under --models (default: local-<UTC time>); an existing run's id "
        "restarts that run, as a spot restart does: its own archives are restored and kept",
    )

    def run(a: argparse.Namespace) -> int:
        from fleetcast.local.training import local_train_main

        return local_train_main(
            data=a.data,
            hosts=a.hosts,
            models=a.models,
            work_dir=a.work_dir,
            hyperparameters=a.hyperparameters,
            run=a.run_id,
        )

    p.set_defaults(run=run)


def _manifest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("manifest", help="the fleet manifest: which model version serves each customer")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    merge = actions.add_parser(
        "merge",
        help="publish a finished training run: merge its host manifests into <models>/manifest.csv.gz",
    )
    merge.add_argument("--models", required=True, help="the models prefix: a folder or s3://bucket/prefix")
    # dest run_id: `run` is the attribute every subcommand's function is stored under.
    merge.add_argument(
        "--run", dest="run_id", required=True, help="the run id (a SageMaker training job's name)"
    )
    merge.add_argument("--s3-endpoint-url", default=None, help="S3 API endpoint, e.g. a moto server")
    merge.add_argument("--region", default=None, help="region of an s3:// --models (default: your config)")
    merge.add_argument(
        "--sagemaker-manifest",
        default=None,
        help="then also write the archives the published manifest names as a SageMaker manifest file "
        "here (a file or s3:// key that must not exist: the batch forecast's sharded input)",
    )

    def run_merge(a: argparse.Namespace) -> int:
        from fleetcast.models_prefix import merge_main

        return merge_main(
            a.models,
            a.run_id,
            s3_endpoint_url=a.s3_endpoint_url,
            region=a.region,
            sagemaker_manifest_at=a.sagemaker_manifest,
        )

    merge.set_defaults(run=run_merge)


def _serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="the SageMaker inference entry point: the lean server (or MMS: FLEETCAST_SERVER=mms)",
        description="The SageMaker inference entry point (`docker run IMAGE serve`): the multi-model "
        "container API when SAGEMAKER_MULTI_MODEL=true (SageMaker sets it for a multi-model endpoint), "
        "else a single-model endpoint serving /opt/ml/model on /invocations. FLEETCAST_SERVER picks the "
        "server: lean (the default; Flask under gunicorn, no Java) or mms (Multi Model Server, needs Java).",
    )
    p.add_argument("--host", default=None, help="bind address (default: FLEETCAST_BIND_HOST or 0.0.0.0)")
    p.add_argument("--port", type=int, default=None, help="port (default: SAGEMAKER_BIND_TO_PORT or 8080)")

    def run(a: argparse.Namespace) -> int:
        from fleetcast.serving.serve import serve_main

        return serve_main(host=a.host, port=a.port)

    p.set_defaults(run=run)


def _local_endpoint(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "local-endpoint",
        help="emulate a SageMaker multi-model endpoint in front of a running `serve` container",
    )
    p.add_argument("--models", required=True, help="the models prefix: a folder or s3://bucket/prefix")
    p.add_argument("--container", default="http://127.0.0.1:8080", help="the container's multi-model API")
    p.add_argument("--host", default="127.0.0.1", help="bind address")
    p.add_argument("--port", type=int, default=8081, help="port boto3 is pointed at (--endpoint-url)")
    p.add_argument(
        "--max-loaded",
        type=int,
        default=None,
        help="unload least recently used models above N (default: no cap)",
    )
    p.add_argument(
        "--disk-cache", type=Path, default=None, help="where models are extracted (default: a temp dir)"
    )
    p.add_argument(
        "--disk-cache-mb",
        type=float,
        default=None,
        help="evict unloaded models' files above this size (default: no cap)",
    )
    p.add_argument(
        "--container-models-dir",
        default=None,
        help="the cache folder as the container sees it, e.g. /opt/ml/models when it is mounted into docker "
        "(default: --disk-cache, for a container on this machine)",
    )
    p.add_argument("--endpoint-name", default=None, help="only answer this endpoint name (default: any)")
    p.add_argument("--variant", default="AllTraffic", help="the production variant name returned to clients")
    p.add_argument(
        "--model-ready-timeout", type=float, default=60.0, help="seconds before ModelNotReadyException"
    )
    p.add_argument(
        "--s3-endpoint-url", default=None, help="S3 API endpoint, e.g. a moto server (default: AWS)"
    )
    p.add_argument("--region", default=None, help="region of an s3:// --models (default: your AWS config)")

    def run(a: argparse.Namespace) -> int:
        from fleetcast.local.endpoint_main import local_endpoint_main

        return local_endpoint_main(
            models=a.models,
            container=a.container,
            host=a.host,
            port=a.port,
            max_loaded=a.max_loaded,
            disk_cache=a.disk_cache,
            disk_cache_mb=a.disk_cache_mb,
            container_models_dir=a.container_models_dir,
            endpoint_name=a.endpoint_name,
            variant=a.variant,
            model_ready_timeout=a.model_ready_timeout,
            s3_endpoint_url=a.s3_endpoint_url,
            region=a.region,
        )

    p.set_defaults(run=run)


def _invoke(sub: argparse._SubParsersAction) -> None:
    from fleetcast import client  # light: boto3 is imported by the call, not here

    p = sub.add_parser(
        "invoke", help="call InvokeEndpoint (boto3 sagemaker-runtime) for customers' forecasts"
    )
    p.add_argument("--endpoint-url", default=None, help="e.g. http://127.0.0.1:8081 (default: AWS)")
    p.add_argument("--endpoint-name", default="fleetcast", help="(default: %(default)s)")
    p.add_argument("--region", default=None, help="default: AWS_REGION or your config; us-east-1 on loopback")
    client.add_invoke_arguments(p)

    def run(a: argparse.Namespace) -> int:
        return client.invoke_from_args(
            a, endpoint_name=a.endpoint_name, endpoint_url=a.endpoint_url, region=a.region
        )

    p.set_defaults(run=run)


def _plot(sub: argparse._SubParsersAction) -> None:
    from fleetcast import client  # light: boto3 is imported by the call, not here

    p = sub.add_parser("plot", help="write a PNG of a customer's history and forecast with intervals")
    p.add_argument(
        "--models",
        type=Path,
        default=None,
        help="the models folder: the version its fleet manifest names, or <customer>.tar.gz "
        "(history from the model)",
    )
    p.add_argument("--data", type=Path, default=None, help="split data folder or CSV (history from the data)")
    p.add_argument("--customer", required=True, help="customer id")
    p.add_argument("--period", type=int, default=30, help="steps to forecast")
    p.add_argument(
        "--endpoint-url", default=None, help="take the forecast from this endpoint instead of the model"
    )
    p.add_argument("--endpoint-name", default="fleetcast", help="with --endpoint-url")
    p.add_argument("--history-days", type=int, default=120, help="how much history to show")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    client.add_regressor_argument(p)

    def run(a: argparse.Namespace) -> int:
        from fleetcast.plot import plot_main

        try:
            regressors = client.regressor_values(a.regressor, a.period)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return plot_main(
            models=a.models,
            data=a.data,
            customer=a.customer,
            period=a.period,
            endpoint_url=a.endpoint_url,
            endpoint_name=a.endpoint_name,
            history_days=a.history_days,
            out=a.out,
            regressors=regressors,
        )

    p.set_defaults(run=run)


def _forecast(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "forecast",
        help="forecast every customer's archive into one dataset (the batch forecast Processing job)",
        description="Reads the customers the fleet manifest (<models>/manifest.csv.gz) names, each from the "
        "version that serves it, or every <customer>.tar.gz under --models when there is no manifest (or "
        "when the job's models input is ShardedByS3Key, as launch forecast and the pipeline send it: each "
        "instance forecasts the archives it was given); forecasts --period steps after each "
        "customer's last observation with the compiled predictor (the numbers the endpoint answers) and "
        "writes customer,ds,yhat,yhat_lower,yhat_upper,model rows to <out>/forecasts-<host>.csv.gz. A bad "
        "archive fails only its customer, listed in <reports>/forecast-failures-<host>.csv.",
    )
    p.add_argument(
        "--models",
        type=Path,
        default=None,
        help="the models folder: its fleet manifest, or the archives under it (default: "
        "/opt/ml/processing/input/models, under SAGEMAKER_BASE_DIR)",
    )
    p.add_argument("--period", type=int, default=7, help="steps to forecast per customer")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="dataset folder (default: /opt/ml/processing/output/forecasts, under SAGEMAKER_BASE_DIR)",
    )
    p.add_argument(
        "--reports",
        type=Path,
        default=None,
        help="failures and summary folder (default: /opt/ml/processing/output/forecast-reports)",
    )
    p.add_argument("--workers", type=int, default=0, help="forecasting processes; 0 = one per CPU")
    p.add_argument(
        "--regressors",
        type=Path,
        default=None,
        help="future values for models trained with regressors: a timestamp,<regressor>,... CSV(.gz) for "
        "every customer, or a folder of <customer>.csv files with those columns",
    )

    def run(a: argparse.Namespace) -> int:
        from fleetcast.forecast.job import forecast_main

        return forecast_main(
            models=a.models,
            period=a.period,
            out=a.out,
            reports=a.reports,
            workers=a.workers,
            regressors=a.regressors,
        )

    p.set_defaults(run=run)


def _report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write one self-contained HTML page from a training job's reports (and forecasts)",
        description="Headline numbers, a histogram of sMAPE ratio against seasonal-naive, the worst "
        "customers' forecast plots and the failures, from the report-<host>.csv and fleet-summary files "
        "found anywhere under --train-output (an extracted output.tar.gz, a local-train work dir).",
    )
    p.add_argument("--train-output", type=Path, required=True, help="folder holding the training reports")
    p.add_argument(
        "--models",
        type=Path,
        default=None,
        help="the models folder (a fleet manifest, or <customer>.tar.gz anywhere under it): the worst "
        "customers' history (default: searched under --train-output, as a local-train work dir holds them)",
    )
    p.add_argument(
        "--forecasts",
        type=Path,
        default=None,
        help="the forecast dataset (a forecasts-*.csv.gz file or folder) to draw; default: computed from "
        "--models",
    )
    p.add_argument("--period", type=int, default=14, help="steps to forecast when there is no --forecasts")
    p.add_argument("--out", type=Path, required=True, help="HTML file to write")

    def run(a: argparse.Namespace) -> int:
        from fleetcast.report.build import report_main

        return report_main(
            train_output=a.train_output,
            out=a.out,
            models=a.models or a.train_output,
            forecasts=a.forecasts,
            period=a.period,
        )

    p.set_defaults(run=run)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _generate,
    _split,
    _train,
    _local_train,
    _manifest,
    _serve,
    _local_endpoint,
    _invoke,
    _plot,
    _forecast,
    _report,
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="fleetcast", description="Train and serve thousands of per-customer Prophet models on SageMaker."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


# The image links `train` and `serve` to this program, because SageMaker runs `docker run IMAGE train`
# and `docker run IMAGE serve`: called under one of these names, it runs that subcommand.
ALIASES = ("train", "serve")


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        invoked_as = Path(sys.argv[0]).name
        argv = [invoked_as, *sys.argv[1:]] if invoked_as in ALIASES else sys.argv[1:]
    args = build_parser().parse_args(argv)
    from fleetcast.logs import setup_logging

    setup_logging()
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
