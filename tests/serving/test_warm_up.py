"""The lean server's warm-up on a Python whose tarfile predates `filter=` (3.11.2, Debian 12's python3).

The interpreter here is newer, so a subprocess takes tarfile back to 3.11.2's shape first: no
`tarfile.data_filter`, and `extractall`/`extract` refusing the `filter` keyword as 3.11.2 does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.servers import CONTAINER_DIR

AS_ON_3_11_2 = textwrap.dedent(
    """
    import sys, tarfile, logging
    logging.basicConfig(level=logging.INFO)
    del tarfile.data_filter
    for name in ("extractall", "extract"):
        original = getattr(tarfile.TarFile, name)
        def refusing(self, *args, _original=original, _name=name, **kwargs):
            if "filter" in kwargs:
                raise TypeError(f"TarFile.{_name}() got an unexpected keyword argument 'filter'")
            return _original(self, *args, **kwargs)
        setattr(tarfile.TarFile, name, refusing)
    from pathlib import Path
    from fleetcast.serving.lean.warm_up import warm_up
    model_dir = warm_up(Path(sys.argv[1]))
    print("WARM", model_dir)
    sys.exit(0 if model_dir is not None else 1)
    """
)


def test_warm_up_works_without_tarfile_filter(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", AS_ON_3_11_2, str(tmp_path / "warm")],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(CONTAINER_DIR), "PATH": "/usr/bin:/bin"},
    )
    output = done.stdout + done.stderr
    assert "warm-up failed" not in output, output[-3000:]
    assert done.returncode == 0, output[-3000:]
    assert (tmp_path / "warm" / "model" / "model.json").is_file()
    # It rehearses the path real loads take: the compiled form training ships.
    assert (tmp_path / "warm" / "model" / "compiled.json").is_file()
    assert "model/compiled.json (last observation" in output  # the predictor's load line names its source
