"""What a trained model is, for every stage above it: settings, dates, the archive format, the fit engine
and the compiled predictor. Nothing here imports `training/`, `serving/` or `local/`."""
