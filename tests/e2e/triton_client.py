"""Drives a Vitrine worker with NVIDIA's own Triton HTTP client (`pip install tritonclient[http]`).

Usage: python3 triton_client.py HOST:PORT  — exits non-zero on the first mismatch.
The worker must serve the built-in models (intent-mlp, shapes-cnn).
"""
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

client = httpclient.InferenceServerClient(sys.argv[1])
assert client.is_server_live() and client.is_server_ready()
assert client.is_model_ready("intent-mlp") and client.is_model_ready("shapes-cnn")
assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
meta = client.get_model_metadata("shapes-cnn")
assert meta["inputs"][0] == {"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}, meta
names = sorted(m["name"] for m in client.get_model_repository_index())
assert {"intent-mlp", "shapes-cnn"} <= set(names), names

rows = np.random.default_rng(7).normal(size=(5, 16)).astype(np.float32)
answers = []
for binary in (False, True):
    tensor = httpclient.InferInput("features", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    output = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
    result = client.infer("intent-mlp", [tensor], outputs=[output], request_id="r1", priority=2, timeout=1_000_000)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (5, 4), probabilities.shape
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert result.get_response()["id"] == "r1"
    answers.append(probabilities)
assert np.allclose(answers[0], answers[1], atol=1e-6), "JSON and binary answers differ"

try:
    bad = httpclient.InferInput("features", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), np.float32))
    client.infer("intent-mlp", [bad])
    raise AssertionError("a wrong shape was accepted")
except InferenceServerException as error:
    assert "shape [1, 3]" in error.message(), error.message()

client.unload_model("intent-mlp")
assert not client.is_model_ready("intent-mlp")
client.load_model("intent-mlp")
assert client.is_model_ready("intent-mlp")
print("tritonclient", httpclient.__name__, "ok")
