"""Write the seed corpus of every harness into ``corpus/<target>/`` (small valid inputs and slightly broken
ones). Run from anywhere: ``python tests/fuzz/make_corpus.py``; existing seeds of the same name are replaced,
others (minimized inputs added by hand) are kept."""

from __future__ import annotations

import json
import os
import struct

from onnx import TensorProto, helper

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def y4m(header: bytes, frames: list[bytes]) -> bytes:
    return b"YUV4MPEG2 " + header + b"\n" + b"".join(frames)


def y4m_seeds() -> dict[str, bytes]:
    plain = y4m(b"W4 H2 F25:1 Ip A1:1 C420jpeg", [b"FRAME\n" + bytes(range(12))] * 2)
    ten = y4m(b"W2 H2 F30000:1001 C420p10 XCOLORRANGE=FULL", [b"FRAME\n" + struct.pack("<6H", 0, 1, 512, 1023, 64, 940)])
    seeds = {
        "plain": plain,
        "10bit": ten,
        "10bit_over_1023": ten[:-2] + struct.pack("<H", 1024),
        "frame_params": y4m(b"W2 H2 C420mpeg2 XCOLORRANGE=LIMITED", [b"FRAME Ixyz\n" + bytes(6), b"FRAME\n" + bytes(6)]),
        "no_rate": y4m(b"W2 H2 F0:0 C420paldv", [b"FRAME\n" + bytes(6)]),
        "truncated": plain[:-3],
        "bad_frame_header": plain.replace(b"FRAME\n", b"FRAMX\n", 1),
        "odd_width": y4m(b"W3 H2", [b"FRAME\n" + bytes(9)]),
        "bad_rate": y4m(b"W2 H2 F25", [b"FRAME\n" + bytes(6)]),
        "no_newline": b"YUV4MPEG2 W2 H2 C420",
    }
    # flags byte first (see fuzz_y4m.py): regular file, and given values on some
    return {f"{name}_{flags}": bytes([flags]) + data for name, data in seeds.items() for flags in (0, 1, 15)}


def raw_seeds() -> dict[str, bytes]:
    def raw(flags: int, width: int, height: int, body: bytes) -> bytes:
        return struct.pack("<Bii", flags, width, height) + body

    ten_ok = struct.pack("<12H", *range(0, 1200, 100))
    return {
        "8bit_file": raw(1, 4, 2, bytes(range(24))),
        "8bit_stream": raw(0, 4, 2, bytes(range(24))),
        "8bit_partial": raw(1, 4, 2, bytes(20)),
        "10bit_file": raw(3, 4, 2, struct.pack("<12H", *range(0, 1020, 85))),
        "10bit_over_1023": raw(3, 4, 2, ten_ok),
        "10bit_stream_odd": raw(2, 4, 2, ten_ok[:-1]),
        "odd_size": raw(1, 3, 2, bytes(9)),
        "no_width": raw(5, 4, 2, bytes(12)),
        "negative": raw(1, -2, 2, bytes(6)),
        "fps_big": raw(17, 1 << 20, 2, bytes(6)),
    }


PROBE_LOG = """[info] Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'clip.mp4':
[info]   Duration: 00:00:01.00, start: 0.000000, bitrate: 100 kb/s
[info]   Stream #0:0[0x1](und): Video: hevc (Main) (hvc1 / 0x31637668), yuv420p(tv, progressive), 64x64, 25 fps
[info] Stream mapping:
[info]   Stream #0:0 -> #0:0 (copy)
[info] Output #0, null, to 'pipe:':
[info] frame=   25 fps=0.0 q=-1.0 Lsize=N/A time=00:00:00.96 bitrate=N/A speed= 500x
"""


def probe_seeds() -> dict[str, bytes]:
    ten = PROBE_LOG.replace("yuv420p(tv, progressive)", "yuv420p10le(tv, bt2020nc/bt2020/smpte2084)")
    return {
        "probe_ok": b"\x00" + PROBE_LOG.encode(),
        "probe_10bit": b"\x00" + ten.encode(),
        "probe_444": b"\x00" + PROBE_LOG.replace("yuv420p(", "yuv444p(").encode(),
        "probe_no_video": b"\x00" + PROBE_LOG.replace("Video: ", "Audio: ").encode(),
        "probe_error": b"\x80" + (PROBE_LOG + "[error] Invalid data found when processing input\n").encode(),
        "probe_no_frames": b"\x00" + PROBE_LOG.replace("frame=   25", "frame=    0").encode(),
        "filters": b"\x01Filters:\n  T.. = Timeline support\n ------\n TS psnr   VV->V   Calculate the PSNR\n"
                   b" ... libvmaf           VV->V      Calculate the VMAF\n",
        "check_log": b"\x02[hevc @ 0x55d0c0a8] Could not find ref with POC 3\nmore\n",
    }


def manifest_seeds() -> dict[str, bytes]:
    return {
        "ok": b"reference,distorted,width,height,pix_fmt,mos\nref.yuv,d1.yuv,64,48,yuv420p,3.5\nref.yuv,d2.yuv,64,48,,4\n",
        "bom_spaces": b"\xef\xbb\xbf reference , distorted \n a.y4m , b.y4m \n\n",
        "duplicate": b"reference,distorted\na,b\na,b\n",
        "bad_width": b"reference,distorted,width\na,b,-3\n",
        "too_many_fields": b"reference,distorted\na,b,c\n",
        "quoted": b'reference,distorted,note\n"a,1","b ""x""",\'q\n',
        "no_rows": b"reference,distorted\n",
        "missing_column": b"reference,mos\na,1\n",
    }


def serve_seeds() -> dict[str, bytes]:
    def job(header: dict, frames: list[bytes], done: bool = True) -> bytes:
        messages = b"".join(b"FRAM" + struct.pack("<I", len(f)) + f for f in frames)
        return json.dumps(header).encode() + b"\n" + messages + (b"DONE\x00\x00\x00\x00" if done else b"")

    fr = {"engines": ["fr"], "width": 2, "height": 2}
    return {
        "fr": job(fr, [bytes(12), bytes(range(12))]),
        "fr_10bit": job({**fr, "pix_fmt": "yuv420p10le", "fps": 25}, [struct.pack("<12H", *range(0, 1200, 100))]),
        "qpmap_options": job({"engines": ["qpmap"], "width": 4, "height": 2, "base_qp": 30, "max_delta": 3, "grid": 32,
                              "codec": "vvc", "qp_maps": True, "frame_skip": 1, "max_frames": 2}, [bytes(12)]),
        "options": job({**fr, "fr_stride": 2, "matrix": "bt601", "range": "full", "batch_size": 4, "protocol": 1},
                       [bytes(12)]),
        "wrong_size": job(fr, [bytes(11)]),
        "bad_magic": json.dumps(fr).encode() + b"\nFRAX\x0c\x00\x00\x00" + bytes(12),
        "no_done": job(fr, [bytes(12)], done=False),
        "unknown_field": job({**fr, "colour": 1}, []),
        "not_json": b"{engines: fr}\n",
        "no_newline": json.dumps(fr).encode(),
    }


def onnx_model(props: dict[str, str]) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, props)
    return model.SerializeToString()


def metadata_seeds() -> dict[str, bytes]:
    meta = {"kind": "fr", "inputs": ["reference", "distorted"], "outputs": ["score"],
            "preprocess": {"size": 64, "sampling": {"frame_stride": 2}}, "score_scale": {"min": 0, "max": 100},
            "min_size": 32, "untrained": True}
    sidecar = {"format": "vqa-rt-plan", "format_version": 2, "metadata": meta, "precision": "fp16"}
    props = {f"vqa_rt.{k}": json.dumps(v) for k, v in meta.items()}
    seeds = {
        "sidecar_ok": b"\x00" + json.dumps(sidecar).encode(),
        "sidecar_nr": b"\x04" + json.dumps({**sidecar, "metadata": {**meta, "kind": "nr"}}).encode(),
        "sidecar_old_version": b"\x00" + json.dumps({**sidecar, "format_version": 1}).encode(),
        "sidecar_incomplete": b"\x02" + json.dumps({**sidecar, "metadata": {"kind": "fr"}}).encode(),
        "sidecar_not_json": b"\x00{\"format\": \"vqa-rt-plan\",",
        "onnx_ok": b"\x01" + onnx_model(props),
        "onnx_qpmap": b"\x07" + onnx_model({**props, "vqa_rt.kind": '"qpmap"'}),
        "onnx_bad_json": b"\x01" + onnx_model({**props, "vqa_rt.min_size": "{"}),
        "onnx_no_kind": b"\x03" + onnx_model({"vqa_rt.inputs": "[]"}),
        "onnx_truncated": b"\x01" + onnx_model(props)[:40],
    }
    return seeds


def main() -> None:
    for target, seeds in (("y4m", y4m_seeds()), ("raw", raw_seeds()), ("probe", probe_seeds()),
                          ("manifest", manifest_seeds()), ("serve", serve_seeds()), ("metadata", metadata_seeds())):
        folder = os.path.join(CORPUS, target)
        os.makedirs(folder, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(folder, f"seed_{name}"), "wb") as handle:
                handle.write(data)


if __name__ == "__main__":
    main()
