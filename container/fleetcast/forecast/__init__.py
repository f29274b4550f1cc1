"""The batch forecast job: every customer's forecast in one dataset (`fleetcast forecast`)."""
