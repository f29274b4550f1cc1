"""The Processing step: raw consumption CSVs -> one time-sorted file per customer, or N bucket files.

Input: CSV files (or folders of them, searched recursively for *.csv and *.csv.gz) with at least the
columns `customer_id,timestamp,consumption`. Extra numeric columns (e.g. `temperature`) are carried
after `consumption` in both layouts (`columns` says which); other columns are ignored.

Output (the training channel, customer data only), default layout: `<out>/<customer>/data.csv` with
header `timestamp,consumption`, rows sorted by time. With `buckets=N`: `<out>/part-00000.csv` ... holding
whole customers (header `customer_id,timestamp,consumption`, rows sorted by (customer, time)); customer ->
part is `crc32(utf-8 customer name) % N`, stable across runs and machines; customers are in code-point
order of their names. Empty parts are not written, so every part file holds at least one customer (fewer
than N files when there are fewer customers than buckets). In a Processing job with several instances
the parts are `part-<host>-NNNNN.csv` and no two instances write the same key (`cluster`).

The output is staged in a hidden folder inside `<out>` and moved into place when complete: a run that
fails leaves `<out>` as it was. Then the reports go to their own folder (`--reports`, by default the
Processing job's second output or `<out>-reports`): `split_summary.json`, written last (its presence
means the split finished), and `split_renamed_ids.jsonl`.

Two passes keep memory bounded whatever the input size:
1. Read each input in chunks of `chunk_rows` rows, parse and validate them, and append the valid rows as
   20-byte binary records (customer number, time, value; 8 bytes more per kept extra column) to one of S
   spool files chosen by a stable hash of the customer, so all of a customer's rows land in the same
   spool. S grows with the input size (about `spool_rows` rows per spool).
2. Load one spool at a time, sort it by (customer, time) and write each customer's file atomically.

Memory: pass 1 holds one chunk; pass 2 holds one spool, i.e. about `spool_rows` rows, or more when a
single customer is larger than that (memory is bounded by the largest customer, never by the input).
The table of customer ids grows with the number of customers (~250 bytes each, ~250 MB for a million).

Rows are dropped, counted by reason and reported, never silently: a line with more fields than the
header, an empty customer id, an unparseable timestamp, a timestamp outside the span every stage can
hold (`layout.TIMESTAMP_SPAN`, datetime64[ns]'s), a consumption that is not a finite number, a negative
consumption, a kept extra column without a finite number. A row with several problems is counted once,
under the first reason in that order. A corrupt or truncated input file fails the run with one message
naming it. Timestamps are parsed as ISO 8601; tz-aware ones are converted to UTC and made naive; the
output format is `YYYY-MM-DD HH:MM:SS` (sub-second parts are truncated after sorting).

Customer ids are stripped of surrounding blanks and made safe to use as a folder or S3 key name by
`fleetcast.data.customer_ids.safe_customer_id` (the sanitiser train uses too): safe ids are kept, others
become `<cleaned>--<16 hex digits of blake2b(id)>`. An id spelled like one of split's report files gets
the same kind of suffix (as it did when the reports lived beside the customers, so names stay stable).
Two different raw ids never share a name (checked as ids are registered). Renamed ids are listed in the
summary (and in `split_renamed_ids.jsonl`). Names are case-sensitive.

The modules follow the run: `inputs` (discovery, header checks), `columns` (which extra columns are
kept), `cluster` (this instance's share of a multi-instance job), `chunks` (parsing, drop counts),
`customers` (the id table), `spool` (pass 1's parked rows), `writers` (pass 2's files), `reports` (the
summary), `driver` (the run and the command).
"""

from fleetcast.data.split.chunks import DROP_REASONS
from fleetcast.data.split.customers import bucket_of
from fleetcast.data.split.driver import WORK_DIR, SplitResult, default_reports_dir, split, split_main
from fleetcast.data.split.errors import SplitError
from fleetcast.data.split.reports import RENAMED_IDS_FILE, SUMMARY_FILE
from fleetcast.data.split.writers import part_name

__all__ = [
    "DROP_REASONS",
    "RENAMED_IDS_FILE",
    "SUMMARY_FILE",
    "WORK_DIR",
    "SplitError",
    "SplitResult",
    "bucket_of",
    "default_reports_dir",
    "part_name",
    "split",
    "split_main",
]
