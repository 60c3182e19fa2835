"""The sweep: config, inputs, the step store (manifest, lock, resume), executors and the stages in order."""
