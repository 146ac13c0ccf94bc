"""Benchmarks against the fake ComfyUI on loopback: they print numbers, they do not pass or fail.
`python -m bench` (or `make bench`) runs every section; `python -m bench.<section>` one of them."""
