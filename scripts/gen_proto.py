"""Regenerate the Python modules of every .proto file in proto/.

Run from anywhere: ``python scripts/gen_proto.py`` writes the files,
``python scripts/gen_proto.py --check`` only compares a fresh generation with the
committed files and exits 1 (listing the files) when they differ.

protoc runs with ``-Iproto``, so each descriptor carries the file's plain name
(``ankaios.proto``, ``ank_base.proto``, ...) and one .proto file imports another by
that name. protoc writes the generated cross-module imports as top-level imports
(``import ankaios_pb2``); they are rewritten to the installed package
(``from ankaios_agent.proto import ankaios_pb2``), the one import name the agent
claims. Needs ``grpcio-tools`` (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PACKAGE = "ankaios_agent.proto"
# protoc's plain imports of sibling generated modules, in .py and .pyi output alike.
_SIBLING_IMPORT = re.compile(rb"^import (\w+_pb2(?:_grpc)?) as (\w+)$", re.MULTILINE)


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.glob("*.proto"))


def generated_names() -> list[str]:
    names: list[str] = []
    for proto in proto_files():
        stem = proto.stem
        names += [f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"]
    return names


def generate(out_dir: Path) -> None:
    """Run protoc (from grpc_tools) into ``out_dir``; raise RuntimeError on failure."""
    from grpc_tools import protoc  # noqa: PLC0415 (late: only the dev extra ships it)

    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *(str(path) for path in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed for " + ", ".join(p.name for p in proto_files()))
    for name in generated_names():
        path = out_dir / name
        text = path.read_bytes()
        path.write_bytes(_SIBLING_IMPORT.sub(rb"from " + PACKAGE.encode() + rb" import \1 as \2", text))


def differences() -> list[str]:
    """Names of the committed generated files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh_dir = Path(tmp)
        generate(fresh_dir)
        return [
            name
            for name in generated_names()
            if not (PROTO_DIR / name).is_file()
            or (PROTO_DIR / name).read_bytes() != (fresh_dir / name).read_bytes()
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = differences()
        for name in stale:
            print(f"proto/{name} differs from a fresh generation; run scripts/gen_proto.py", file=sys.stderr)
        return 1 if stale else 0
    generate(PROTO_DIR)
    print("regenerated " + ", ".join(f"proto/{name}" for name in generated_names()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
