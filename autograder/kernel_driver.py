"""Code the grader installs in a student's kernel for the trusted re-check.

It is sent as source text (the sandbox cannot import the grader) and executed in the
kernel; it serves requests the trusted process writes into the kernel's scratch folder
(``.rpc/``): call a function, read an attribute or an item. Arguments and results cross as
JSON plus NumPy ``.npz`` files. Anything that is not plain data stays in the kernel and is
referred to by a handle. Student code can replace or break this driver; that gains nothing,
because only the numbers it hands back are judged, by code the kernel cannot reach.
"""


def __tnn_install(rpc_dir):
    import json
    import os
    import pickle
    import sys
    import time

    import numpy

    handles = {}
    counter = [0]

    def new_handle(obj):
        counter[0] += 1
        handles[counter[0]] = obj
        return {"$handle": counter[0]}

    def encode(value, arrays):
        if value is None or isinstance(value, (bool, str)):
            return value
        if type(value) is int:
            return value
        if type(value) is float:
            return {"$float": repr(value)}
        if isinstance(value, numpy.ndarray) and value.dtype.kind in "biufc":
            key = f"a{len(arrays)}"
            arrays[key] = numpy.array(value)
            return {"$array": key}
        if isinstance(value, numpy.generic) and value.dtype.kind in "biufc":
            key = f"a{len(arrays)}"
            arrays[key] = numpy.array(value)
            return {"$npscalar": key}
        torch = sys.modules.get("torch")  # no tensor exists before torch is imported
        if torch is not None and isinstance(value, torch.Tensor):
            key = f"a{len(arrays)}"
            arrays[key] = value.detach().cpu().numpy()
            return {"$tensor": key}
        if type(value) in (list, tuple):
            return {"$" + type(value).__name__: [encode(v, arrays) for v in value]}
        if type(value) is dict and all(type(k) in (str, int) for k in value):
            return {"$dict": [[k, encode(v, arrays)] for k, v in value.items()]}
        return new_handle(value)

    def decode(node, arrays, objects):
        if isinstance(node, dict):
            (kind, payload), = node.items()
            if kind == "$float":
                return float(payload)
            if kind == "$array":
                return numpy.array(arrays[payload])
            if kind == "$npscalar":
                return arrays[payload][()]
            if kind == "$tensor":
                import torch
                return torch.from_numpy(numpy.array(arrays[payload]))
            if kind in ("$list", "$tuple"):
                items = [decode(v, arrays, objects) for v in payload]
                return items if kind == "$list" else tuple(items)
            if kind == "$dict":
                return {k: decode(v, arrays, objects) for k, v in payload}
            if kind == "$handle":
                return handles[payload]
            if kind == "$object":
                return objects[payload]
            if kind == "$callback":
                return make_callback(payload)
            raise ValueError(f"unknown node {kind}")
        return node

    def write(stem, message, arrays):
        if arrays:
            numpy.savez(os.path.join(rpc_dir, stem + ".npz"), **arrays)
        tmp = os.path.join(rpc_dir, stem + ".json.tmp")
        with open(tmp, "w") as f:
            json.dump(message, f)
        os.replace(tmp, os.path.join(rpc_dir, stem + ".json"))

    def read(stem):
        with open(os.path.join(rpc_dir, stem + ".json")) as f:
            message = json.load(f)
        path = os.path.join(rpc_dir, stem + ".npz")
        arrays = dict(numpy.load(path, allow_pickle=False)) if os.path.exists(path) else {}
        path = os.path.join(rpc_dir, stem + ".pkl")
        objects = []
        if os.path.exists(path):
            with open(path, "rb") as f:
                objects = pickle.load(f)
        return message, arrays, objects

    def make_callback(callback_id):
        def callback(*args, **kwargs):
            counter[0] += 1
            stem = f"cb{counter[0]}"
            arrays = {}
            write(stem + ".req", {"callback": callback_id, "args": encode(list(args), arrays),
                                  "kwargs": encode(dict(kwargs), arrays)}, arrays)
            answer = os.path.join(rpc_dir, stem + ".res.json")
            while not os.path.exists(answer):
                time.sleep(0.0005)
            message, arrays, _ = read(stem + ".res")
            if not message["ok"]:
                raise RuntimeError(message["error"])
            return decode(message["value"], arrays, [])
        return callback

    def serve(request_id, namespace):
        arrays_out = {}
        try:
            request, arrays, objects = read(request_id + ".req")
            target = request["target"]
            obj = handles[target["handle"]] if "handle" in target else namespace[target["name"]]
            op = request["op"]
            if op == "call":
                args = decode(request["args"], arrays, objects)
                kwargs = decode(request["kwargs"], arrays, objects)
                # The test's floating-point error policy (np.errstate) applies to the call.
                errstate = decode(request["errstate"], arrays, objects) if "errstate" in request else {}
                with numpy.errstate(**errstate):
                    result = obj(*args, **kwargs)
            elif op == "getattr":
                result = getattr(obj, request["name"])
            elif op == "getitem":
                result = obj[decode(request["key"], arrays, objects)]
            elif op == "len":
                result = len(obj)
            elif op == "iter":
                result = list(obj)
            else:
                raise ValueError(f"unknown operation {op}")
            response = {"ok": True, "value": encode(result, arrays_out)}
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are answers too
            arrays_out = {}
            response = {"ok": False, "error_type": type(exc).__name__, "error": str(exc)[:2000]}
        write(request_id + ".res", response, arrays_out)

    return serve


def __tnn_serve(request_id):
    __tnn_serve.serve(request_id, get_ipython().user_ns)  # noqa: F821 (IPython global)
