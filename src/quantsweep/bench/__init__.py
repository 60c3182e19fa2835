"""Speed: interleaved latency/throughput against FP32 on each runtime (rounds in rotating order), with the spread."""
