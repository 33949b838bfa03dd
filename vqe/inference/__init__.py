"""Running a trained model: `enhance` (a video in, a video out), test-time `adapt`ation, ONNX `export`
and the `bench`mark of both."""
