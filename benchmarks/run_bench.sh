#!/usr/bin/env bash
# Full simulated benchmark (all suites, 5 reps, scale tests) into bench-out/.
# Extra arguments pass through, e.g. --quick, --profile qwen2.5-1.5b-cpu2, or
# --base-url http://127.0.0.1:8080/v1 --model qwen2.5-1.5b-instruct for a real endpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
exec uv run --frozen python -m llmcompiler_graph.bench --out bench-out "$@"
