"""Speed: interleaved latency/throughput against FP32, one module per runtime, honest labels from the executed graph."""
