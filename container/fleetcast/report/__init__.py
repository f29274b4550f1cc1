"""The fleet report: a training job's outputs as one self-contained HTML page (`fleetcast report`)."""
