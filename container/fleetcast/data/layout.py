"""The training channel's file layout, shared by the split step that writes it and `train` that reads it.

- `<customer>/data.csv` with header `timestamp,consumption` (one customer per folder);
- flat `<customer>.csv` without a header (the AWS blog sample's splitter output);
- bucket files holding many whole customers, header `customer_id,timestamp,consumption`.
"""

CUSTOMER_COLUMN = "customer_id"
TIME_COLUMN = "timestamp"
VALUE_COLUMN = "consumption"
INPUT_COLUMNS = (CUSTOMER_COLUMN, TIME_COLUMN, VALUE_COLUMN)  # what the fleet CSV and buckets must hold
CUSTOMER_FILE = "data.csv"
CUSTOMER_HEADER = f"{TIME_COLUMN},{VALUE_COLUMN}\n"
BUCKET_HEADER = f"{CUSTOMER_COLUMN},{TIME_COLUMN},{VALUE_COLUMN}\n"

# The timestamps every stage can hold: datetime64[ns] (Prophet's and pandas' default resolution) spans
# 1677-09-21 to 2262-04-11; whole days inside it, as naive UTC, half-open [start, end). `split` drops a row
# outside it as a bad row, and `train` reads such a timestamp as missing.
TIMESTAMP_SPAN = ("1677-09-22", "2262-04-11")
