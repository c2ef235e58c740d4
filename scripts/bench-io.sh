#!/usr/bin/env bash
# Command-level benchmarks of shardprep's I/O and scale, on generated Abalone rows: each mode
# runs its configurations interleaved (every configuration once per round, in the same order,
# so drift of a shared machine hits all alike), takes medians over the rounds, checks that the
# configurations write the same lines, and prints a markdown table.
#
#   scripts/bench-io.sh --s3        `run` local files -> local, `run` MinIO -> MinIO (the test
#                                   MinIO of scripts/minio.sh, grant credentials), and `mc cat`
#                                   of the input: the S3 run should take at most the local run
#                                   plus the download
#   scripts/bench-io.sh --cluster   `run --workers 2` against a coordinator (--workers 0) and
#                                   two worker processes (--workers 1 each) on one host
#   scripts/bench-io.sh --memory    `run --workers 2` on 10M and 100M rows (5.3 GB, generated
#                                   once): peak RSS, and time per row
#   --rows N      rows for --s3 and --cluster (default 10000000)
#   --rounds N    rounds (default 3)
#   --compare BIN also time another shardprep binary (e.g. an older build) in --s3 and --cluster
#
# Wall time, CPU seconds (user+sys) and peak RSS come from /usr/bin/time; a cluster's CPU is
# its three processes' sum, its RSS the largest. --s3 also reports the CPU seconds MinIO spent
# during each configuration. Data is kept under $SHARDPREP_BENCH_DIR (default
# /tmp/shardprep-bench), as scripts/bench.sh keeps it; the page cache is left warm.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"

rounds=3 rows=10000000 modes=() compare=""
while [ $# -gt 0 ]; do
  case "$1" in
    --s3 | --cluster | --memory) modes+=("${1#--}") ;;
    --rows) rows=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --compare) compare=$2; shift ;;
    *) echo "usage: scripts/bench-io.sh [--rounds N] [--rows N] [--compare BIN] --s3|--cluster|--memory ..." >&2; exit 2 ;;
  esac
  shift
done
[ ${#modes[@]} -gt 0 ] || { echo "bench-io.sh: name a mode: --s3, --cluster or --memory" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench-io.sh: needs /usr/bin/time (GNU time)" >&2; exit 1; }
data="${SHARDPREP_BENCH_DIR:-/tmp/shardprep-bench}"
mkdir -p "$data"
work=$(mktemp -d "${TMPDIR:-/tmp}/shardprep-bench-io.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/minio.env" ] && scripts/minio.sh stop "$work/minio.env"
  rm -rf "$work"
}
trap cleanup EXIT
sp="$work/shardprep"
scripts/build.sh "$sp"

# input ROWS prints the path of the generated input of ROWS rows, generating it once.
input() {
  local f="$data/abalone-$1.csv"
  [ $(($1 % 1000000)) = 0 ] && f="$data/abalone-$(($1 / 1000000))m.csv"
  [ -s "$f" ] || "$sp" gen --rows "$1" --seed 1 --out "$f" >&2
  echo "$f"
}

# timed NAME SIZE CMD... runs CMD under /usr/bin/time and records NAME|SIZE|wall|user|sys|rss|0
# (the last field is for extra, below).
timed() {
  local name=$1 size=$2 wall user sys rss
  shift 2
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
  read -r wall user sys rss <"$work/time"
  echo "$name|$size|$wall|$user|$sys|$rss|0" >>"$work/results"
  echo "round $r: $name ($size): ${wall}s" >&2
}

# lines DIR prints one hash of the sorted lines of the parts under DIR.
lines() { find "$1" -path '*/_shardprep' -prune -o -type f -name 'part-*' -print0 | xargs -0 cat | LC_ALL=C sort -S 1G | sha256sum | cut -d' ' -f1; }

# check NAME DIR compares the lines under DIR with the first configuration's of the mode.
check() {
  local h
  h=$(lines "$2")
  if [ -z "${want:-}" ]; then
    want=$h
  elif [ "$h" != "$want" ]; then
    echo "bench-io.sh: $1 wrote other lines than the first configuration" >&2
    exit 1
  fi
}

# table prints the medians of the results as a markdown table, one row per configuration.
table() {
  awk -F'|' '
    { k = $1 "|" $2; n[k]++; W[k, n[k]] = $3; C[k, n[k]] = $4 + $5; M[k, n[k]] = $6; X[k, n[k]] = $7
      if (!(k in seen)) { seen[k] = 1; order[++o] = k } }
    function med(A, k, cnt,   i, j, t, v) {
      for (i = 1; i <= cnt; i++) v[i] = A[k, i]
      for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
    }
    END {
      for (i = 1; i <= o; i++) {
        k = order[i]; split(k, p, "|")
        printf "| `%s` | %s | %.2f s | %.2f | %d MiB |%s\n", p[1], p[2], med(W, k, n[k]), med(C, k, n[k]), med(M, k, n[k]) / 1024, xcol ? sprintf(" %.2f |", med(X, k, n[k])) : ""
      }
    }' xcol="$1" "$work/results"
}

# median NAME prints the median wall time of configuration NAME.
median() {
  awk -F'|' -v k="$1" '$1 == k { print $3 }' "$work/results" | sort -n |
    awk '{ v[++n] = $1 } END { print n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

# extra VALUE sets the last field (extra) of the last result.
extra() { sed -i '$ s/|[^|]*$/|'"$1"'/' "$work/results"; }

header() {
  echo
  echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); medians of $rounds interleaved rounds"
  echo
}

# report prints the header and the table of the configurations, without MinIO's CPU.
report() {
  header
  echo "| run | rows | wall | CPU s | peak RSS |"
  echo "|---|---|---|---|---|"
  table ""
  echo
}

bench_s3() {
  local in obj mc env pid cpu0 out
  in=$(input "$rows")
  obj=$(basename "$in")
  scripts/minio.sh install
  scripts/minio.sh start "$work/minio.env"
  # shellcheck source=/dev/null
  source "$work/minio.env"
  pid=$(cat "$SHARDPREP_MINIO_DIR/minio.pid")
  mc=("$SHARDPREP_MINIO_BIN/mc" --config-dir "$work/mc" --quiet --no-color)
  "${mc[@]}" alias set local "$SHARDPREP_MINIO_ENDPOINT" "$SHARDPREP_MINIO_ROOT_USER" "$SHARDPREP_MINIO_ROOT_PASSWORD" >/dev/null
  "${mc[@]}" cp "$in" "local/shardprep/UserA/bench/in/$obj" >/dev/null
  env=(env AWS_ACCESS_KEY_ID="$SHARDPREP_MINIO_USERA_KEY" AWS_SECRET_ACCESS_KEY="$SHARDPREP_MINIO_USERA_SECRET" AWS_REGION=us-east-1)
  s3=(--s3-endpoint "$SHARDPREP_MINIO_ENDPOINT" --credentials grants --grants-file cmd/shardprep/testdata/grants.json)
  minio_cpu() { awk '{ print ($14 + $15) / 100 }' "/proc/$pid/stat"; }
  minio_used() { awk -v a="$cpu0" -v b="$(minio_cpu)" 'BEGIN { print b - a }'; }
  : >"$work/results"
  want=
  for ((r = 1; r <= rounds; r++)); do
    out="$work/out"
    rm -rf "$out"
    cpu0=$(minio_cpu)
    timed "run, local files" "$rows" "$sp" run --workers 2 --seed 1 --quiet --input "$in" --output "$out"
    extra "$(minio_used)"
    [ "$r" = 1 ] && check "run, local files" "$out"
    rm -rf "$out"
    s3run "run, MinIO to MinIO" "$sp"
    [ -n "$compare" ] && s3run "before: run, MinIO to MinIO" "$compare"
    cpu0=$(minio_cpu)
    timed "mc cat of the input" "$rows" "${mc[@]}" cat "local/shardprep/UserA/bench/in/$obj"
    extra "$(minio_used)"
  done
  header
  echo "| run | rows | wall | CPU s | peak RSS | MinIO CPU s |"
  echo "|---|---|---|---|---|---|"
  table 1
  local l s c f
  l=$(median "run, local files") s=$(median "run, MinIO to MinIO") c=$(median "mc cat of the input")
  echo
  echo "S3 wall / (local wall + mc cat wall): $(awk -v s="$s" -v l="$l" -v c="$c" 'BEGIN { printf "%.2f (%.2f s against %.2f + %.2f s; bar <= 1)", s / (l + c), s, l, c }')"
  # On one host, MinIO's work and shardprep's share the CPUs: no overlap of I/O and compute
  # can bring the S3 run's wall below their summed CPU seconds over the CPUs.
  f=$(cpu_floor "run, MinIO to MinIO")
  echo "S3 run's CPU floor, (shardprep + MinIO CPU s) / $(nproc) CPUs: $f s; S3 wall / floor: $(awk -v s="$s" -v f="$f" 'BEGIN { printf "%.2f", s / f }')"
}

# cpu_floor NAME prints the median over the rounds of NAME's CPU seconds plus MinIO's, over
# the CPUs: the least wall time the two could take together.
cpu_floor() {
  awk -F'|' -v k="$1" -v n="$(nproc)" '$1 == k { print ($4 + $5 + $7) / n }' "$work/results" | sort -n |
    awk '{ v[++n] = $1 } END { printf "%.2f", n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

# s3run NAME BIN times BIN's MinIO-to-MinIO job as configuration NAME with MinIO's CPU, checks
# its lines in the first round, and removes its output.
s3run() {
  cpu0=$(minio_cpu)
  timed "$1" "$rows" "${env[@]}" "$2" run --workers 2 --seed 1 --quiet "${s3[@]}" \
    --input "s3://shardprep/UserA/bench/in/$obj" --output "s3://shardprep/UserA/bench/out-$r/"
  extra "$(minio_used)"
  if [ "$r" = 1 ]; then
    "${mc[@]}" mirror "local/shardprep/UserA/bench/out-$r" "$work/s3out" >/dev/null
    check "$1" "$work/s3out"
    rm -rf "$work/s3out"
  fi
  "${mc[@]}" rm --recursive --force "local/shardprep/UserA/bench/out-$r" >/dev/null
}

# free_port prints a port nothing listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# cluster NAME BIN times a coordinator (--workers 0) and two worker processes (--workers 1) of BIN
# as configuration NAME: the wall from the start to the last exit, the processes' summed CPU and
# largest RSS; it checks the lines in the first round.
cluster() {
  local port start end i
  port=$(free_port)
  start=$(date +%s.%N)
  /usr/bin/time -f '%e %U %S %M' -o "$work/time-c" "$2" coordinator --listen "127.0.0.1:$port" --workers 0 \
    --seed 1 --quiet --log-format json --input "$in" --output "$out" >/dev/null 2>"$work/stderr-c" &
  pids=($!)
  for i in 1 2; do
    /usr/bin/time -f '%e %U %S %M' -o "$work/time-w$i" "$2" worker --coordinator "127.0.0.1:$port" --workers 1 \
      --log-format json >/dev/null 2>"$work/stderr-w$i" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { cat "$work"/stderr-* >&2; exit 1; }; done
  pids=()
  end=$(date +%s.%N)
  awk -v w="$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" -v rows="$rows" -v name="$1" '
    { u += $2; s += $3; if ($4 > m) m = $4 }
    END { printf "%s|%s|%.2f|%.2f|%.2f|%d|0\n", name, rows, w, u, s, m }' \
    "$work/time-c" "$work/time-w1" "$work/time-w2" >>"$work/results"
  echo "round $r: $1: $(tail -1 "$work/results" | cut -d'|' -f3)s" >&2
  [ "$r" = 1 ] && check "$1" "$out"
  rm -rf "$out"
}

bench_cluster() {
  local out
  in=$(input "$rows")
  : >"$work/results"
  want=
  export SHARDPREP_CLUSTER_SECRET
  SHARDPREP_CLUSTER_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  for ((r = 1; r <= rounds; r++)); do
    out="$work/out"
    rm -rf "$out"
    timed "run --workers 2" "$rows" "$sp" run --workers 2 --seed 1 --quiet --input "$in" --output "$out"
    [ "$r" = 1 ] && check "run --workers 2" "$out"
    rm -rf "$out"
    cluster "coordinator + 2 workers" "$sp"
    [ -n "$compare" ] && cluster "before: coordinator + 2 workers" "$compare"
  done
  report
  echo "cluster wall / run wall: $(awk -v a="$(median "coordinator + 2 workers")" -v b="$(median "run --workers 2")" 'BEGIN { printf "%.3f (bar <= 1.05)", a / b }')"
}

bench_memory() {
  local small big out
  small=$(input 10000000)
  big=$(input 100000000)
  : >"$work/results"
  for ((r = 1; r <= rounds; r++)); do
    for f in "$small" "$big"; do
      out="$work/out"
      rm -rf "$out"
      # The other size's run (5.3 GB read, as much written) pushes this
      # input out of the page cache: read it back in, so that both run warm.
      cat "$f" >/dev/null
      timed "run --workers 2" "$(basename "$f" .csv | cut -d- -f2)" "$sp" run --workers 2 --seed 1 --quiet --input "$f" --output "$out"
      rm -rf "$out"
    done
  done
  report
  awk -F'|' '
    { k = $2; n[k]++; W[k, n[k]] = $3; C[k, n[k]] = $4 + $5 }
    function med(A, k, cnt,   i, j, t, v) {
      for (i = 1; i <= cnt; i++) v[i] = A[k, i]
      for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
    }
    END { printf "100M / (10 x 10M): wall %.2f, CPU %.2f (bar 0.9 to 1.1)\n", med(W, "100m", n["100m"]) / (10 * med(W, "10m", n["10m"])), med(C, "100m", n["100m"]) / (10 * med(C, "10m", n["10m"])) }
  ' "$work/results"
}

for m in "${modes[@]}"; do
  "bench_$m"
done
