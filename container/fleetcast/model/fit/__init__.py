"""The fit engine: Prophet's exact MAP in process (no CmdStan), with stock `Prophet.fit` as the reference
and the fallback for anything it does not cover."""
