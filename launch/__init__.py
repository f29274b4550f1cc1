"""fleetcast's launcher: `python -m launch <command>` takes the pipeline to SageMaker with boto3 alone.

upload -> process -> train -> deploy -> invoke -> teardown; status/wait poll what they started.
"""
