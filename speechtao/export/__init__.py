"""Export: ONNX FP32 (:mod:`.onnx_export`), ONNX INT8 and TensorRT calibration caches (:mod:`.quantize`),
quantization-aware fine-tuning (:mod:`.qat`), TensorRT engines (:mod:`.tensorrt`, GPU hosts only) and Triton
model repositories (:mod:`.triton`). Each submodule imports its heavy dependencies itself."""
