"""The infer worker: model holder, job runner, progress bridge, artifact publishing."""
