"""Writes a GGUF file with every tensor dequantised to F32 and the metadata unchanged, so
llama.cpp and synthpipe can be timed on the same f32 weights (BENCHMARKS.md, "Language
models"). Needs the `gguf` package (llama.cpp's own Python reader/writer) and numpy.

    python benches/lm/dequantise_gguf.py IN.gguf OUT-f32.gguf
"""
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize


def main(src: str, dst: str) -> None:
    r = GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = GGUFWriter(dst, arch)
    for name, field in r.fields.items():
        # The writer sets these itself.
        if name.startswith("GGUF.") or name in ("general.architecture", "general.alignment"):
            continue
        vtype = field.types[0]
        if vtype == GGUFValueType.ARRAY:
            w.add_key_value(name, field.contents(), vtype, sub_type=field.types[-1])
        else:
            w.add_key_value(name, field.contents(), vtype)
    for t in r.tensors:
        values = dequantize(t.data, t.tensor_type).astype(np.float32)
        # GGUF lists dimensions fastest-first; numpy wants them slowest-first.
        shape = tuple(int(d) for d in reversed(t.shape))
        w.add_tensor(t.name, values.reshape(shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
