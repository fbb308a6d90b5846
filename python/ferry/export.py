"""ferry.export: a PyTorch module to an ONNX file Ferry can batch.

Ferry batches along dim 0 of every input and output, so the export must
declare that dim dynamic (torch.onnx.export's dynamic_axes); a model
exported with a fixed batch is refused at load with this advice.
"""


def export(module, example_input, path, input_names=None, output_names=None, opset=17,
           dynamic_batch=True):
    """Exports module (in eval mode, on the CPU) to path with torch.onnx.export,
    with dim 0 of every input and output named "batch" and dynamic.

    example_input: a tensor (or numpy array), or a tuple of them for several
    inputs, with any batch size. input_names default to "input" (or
    "input0", "input1", ...), output_names to "output" (or "output0", ...);
    the number of outputs is found by running the module once. Returns path.
    Raises ImportError when torch is not installed.
    """
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise ImportError("ferry.export needs PyTorch (Debian: python3-torch)") from e
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    args = tuple(torch.as_tensor(a) for a in args)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(*args)
        n_out = len(out) if isinstance(out, (tuple, list)) else 1
        if input_names is None:
            input_names = ["input"] if len(args) == 1 else ["input%d" % i for i in range(len(args))]
        if output_names is None:
            output_names = ["output"] if n_out == 1 else ["output%d" % i for i in range(n_out)]
        axes = {n: {0: "batch"} for n in list(input_names) + list(output_names)}
        torch.onnx.export(module, args, str(path), input_names=list(input_names),
                          output_names=list(output_names),
                          dynamic_axes=axes if dynamic_batch else None, opset_version=opset,
                          do_constant_folding=True)
    finally:
        module.train(was_training)
    return path
