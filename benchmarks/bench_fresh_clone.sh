#!/usr/bin/env bash
# `make run` on a fresh clone: seconds until the demo answers HTTP, and the size of .venv.
# Prints both with the ratio to the figures before `make run` stopped installing the test tools
# (744 MB, 57 s). Usage: benchmarks/bench_fresh_clone.sh [REPO] [BRANCH] [PORT]
# The clone goes to a temporary folder, which is removed at the end; pip's cache is used as is.
set -u
REPO="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
BRANCH="${2:-$(git -C "$REPO" rev-parse --abbrev-ref HEAD)}"
PORT="${3:-5719}"
WORK="$(mktemp -d /tmp/proficio-fresh-XXXXXX)"
git clone -q --branch "$BRANCH" "$REPO" "$WORK/clone"
cd "$WORK/clone"
start=$(date +%s.%N)
setsid env PROFICIO_INSTANCE="$WORK/instance" make run DEMO_ARGS="--port $PORT" \
  > "$WORK/make-run.log" 2>&1 &
pid=$!
ok=0
for _ in $(seq 1 1200); do
  if curl -sf -o /dev/null "http://127.0.0.1:$PORT/login"; then ok=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
end=$(date +%s.%N)
kill -TERM -- "-$pid" 2>/dev/null; sleep 3; kill -KILL -- "-$pid" 2>/dev/null
if [ "$ok" != 1 ]; then echo "make run did not serve; log:"; tail -20 "$WORK/make-run.log"; exit 1; fi
secs=$(echo "$end - $start" | bc)
mb=$(du -sm .venv | cut -f1)
printf 'time to serving: %.0f s (%.2f x the 57 s before)\n' "$secs" "$(echo "$secs / 57" | bc -l)"
printf 'venv size: %d MB (%.2f x the 744 MB before)\n' "$mb" "$(echo "$mb / 744" | bc -l)"
cd / && rm -rf "$WORK"
