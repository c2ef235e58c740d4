#!/usr/bin/env bash
# Command-level benchmark: shardprep against the one-core yardsticks `limit` and
# `limit-pass` (../shared/bench), side by side in one run, on generated Abalone rows.
#
#   scripts/bench.sh                   2M and 10M rows, 3 interleaved rounds
#   scripts/bench.sh --huge            also 100M rows (5.3 GB, generated once) at --workers 2
#   scripts/bench.sh --compare BIN     also time another shardprep binary (e.g. an older build), in
#                                      both split modes
#   scripts/bench.sh --rounds N        N rounds instead of 3 (medians are taken over them)
#   scripts/bench.sh --report FILE     print the table of an earlier run's raw results (each run
#                                      keeps them in $SHARDPREP_BENCH_DIR/results.txt)
#   scripts/bench.sh --report-cost     what the column statistics and the report cost: the normal
#                                      build against one built with the tag shardprep_nostats
#                                      (no statistics, no report), `run --workers 2` on 10M rows,
#                                      interleaved, medians of 5 rounds (or --rounds N)
#
# Data is generated once (`shardprep gen --seed 1`) under $SHARDPREP_BENCH_DIR (default
# /tmp/shardprep-bench) and kept; the page cache is left warm. Each round runs every
# configuration once, in the same order, so drift of a shared machine hits all of them alike.
# Wall time, CPU seconds (user+sys) and peak RSS come from /usr/bin/time. The lines of each
# configuration's output (train and validation together) are checked once against
# limit-pass's, as a multiset. The yardsticks run with GOMAXPROCS=1.
#
# Prints a markdown table of medians and the ratios that the performance goals name.
# The yardsticks live beside the repository: ../shared/bench, or $SHARDPREP_SHARED/bench.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"

rounds="" huge=0 compare="" report="" cost=0
while [ $# -gt 0 ]; do
  case "$1" in
    --huge) huge=1 ;;
    --rounds) rounds=$2; shift ;;
    --compare) compare=$2; shift ;;
    --report) report=$2; shift ;;
    --report-cost) cost=1 ;;
    *) echo "usage: scripts/bench.sh [--rounds N] [--huge] [--compare BIN] [--report FILE] [--report-cost]" >&2; exit 2 ;;
  esac
  shift
done
[ -x /usr/bin/time ] || { echo "bench.sh: needs /usr/bin/time (GNU time)" >&2; exit 1; }
shared="${SHARDPREP_SHARED:-$(pwd)/../shared}"
[ "$cost" = 1 ] || [ -d "$shared/bench/limit-pass" ] || { echo "bench.sh: no $shared/bench/limit-pass; set SHARDPREP_SHARED" >&2; exit 1; }
data="${SHARDPREP_BENCH_DIR:-/tmp/shardprep-bench}"
mkdir -p "$data/bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/shardprep-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# reportCost times the normal build against one without column statistics and report.
reportCost() {
  local rounds=${rounds:-5} f="$data/abalone-10m.csv" sp="$data/bin/shardprep" off="$data/bin/shardprep-nostats"
  scripts/build.sh "$sp"
  scripts/build.sh "$off" -tags shardprep_nostats
  [ -s "$f" ] || "$sp" gen --rows 10000000 --seed 1 --out "$f"
  local r b order out="$work/out" res="$work/cost" h want=""
  : >"$res"
  for ((r = 1; r <= rounds; r++)); do
    # Each build goes first in every other round, so that what the
    # first run of a round meets (the last one's output still being
    # written back, say) falls on both alike.
    order=("$sp" "$off")
    [ $((r % 2)) = 0 ] && order=("$off" "$sp")
    for b in "${order[@]}"; do
      rm -rf "$out"
      /usr/bin/time -f '%e %U %S' -o "$work/time" "$b" run --workers 2 --seed 1 --quiet --input "$f" --output "$out" \
        >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
      read -r wall user sys <"$work/time"
      echo "$b $wall $(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }') $r" >>"$res"
      echo "round $r: $(basename "$b"): ${wall}s" >&2
      if [ "$r" = 1 ]; then
        # The parts are the same bytes; only the manifest and the report differ.
        h=$(cd "$out" && find . -path ./_shardprep -prune -o -type f -print | sort | xargs sha256sum | sha256sum)
        [ -z "$want" ] && want=$h
        [ "$h" = "$want" ] || { echo "bench.sh: the build without statistics wrote other parts" >&2; exit 1; }
      fi
    done
  done
  rm -rf "$out"
  med() { awk -v b="$1" -v c="$2" '$1 == b { print $c }' "$res" | sort -n | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  local w1 c1 w0 c0
  w1=$(med "$sp" 2) c1=$(med "$sp" 3) w0=$(med "$off" 2) c0=$(med "$off" 3)
  echo
  echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); \`run --workers 2\` on 10M rows ($(($(stat -L -c %s "$f") / 1000000)) MB), medians of $rounds interleaved rounds"
  echo
  echo "| build | wall | CPU s (user+sys) |"
  echo "|---|---|---|"
  echo "| normal | $w1 s | $c1 |"
  echo "| \`-tags shardprep_nostats\` (no column statistics, no report) | $w0 s | $c0 |"
  awk -v a="$w1" -v b="$w0" -v c="$c1" -v d="$c0" 'BEGIN { printf "| column statistics and report | %+.1f%% | %+.1f%% |\n", (a / b - 1) * 100, (c / d - 1) * 100 }'
  # Each round's two runs are neighbours in time: the median of their ratios
  # is less at the mercy of a load that drifts over the rounds.
  ratios() { awk -v c="$1" -v sp="$sp" '$1 == sp { a[$4] = $c; next } { b[$4] = $c } END { for (r in a) print (a[r] / b[r]) * 100 - 100 }' "$res" | sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  awk -v a="$(ratios 2)" -v c="$(ratios 3)" 'BEGIN { printf "| the same, median of the rounds'"'"' ratios | %+.1f%% | %+.1f%% |\n", a, c }'
}
if [ "$cost" = 1 ]; then
  reportCost
  exit 0
fi
rounds=${rounds:-3}

[ -n "$report" ] || scripts/build.sh "$data/bin/shardprep"
(cd "$shared/bench/limit" && go build -o "$data/bin/limit" .)
(cd "$shared/bench/limit-pass" && go build -o "$data/bin/limit-pass" .)
sp="$data/bin/shardprep"

sizes=(2m 10m)
[ "$huge" = 1 ] && sizes+=(100m)
declare -A rows=([2m]=2000000 [10m]=10000000 [100m]=100000000)
for s in "${sizes[@]}"; do
  f="$data/abalone-$s.csv"
  [ -s "$f" ] || "$sp" gen --rows "${rows[$s]}" --seed 1 --out "$f"
done

# configs: name|size|command (IN and OUT are substituted)
configs=()
for s in "${sizes[@]}"; do
  configs+=("limit|$s|env GOMAXPROCS=1 $data/bin/limit IN OUT/all")
  configs+=("limit-pass|$s|env GOMAXPROCS=1 $data/bin/limit-pass IN OUT")
  configs+=("run --workers 2|$s|$sp run --workers 2 --seed 1 --quiet --input IN --output OUT")
  [ "$s" = 100m ] && continue
  configs+=("run --workers 1|$s|$sp run --workers 1 --seed 1 --quiet --input IN --output OUT")
  [ -n "$compare" ] && configs+=("before: run --workers 2|$s|$compare run --workers 2 --seed 1 --quiet --input IN --output OUT")
done
configs+=("run --workers 2 --split-mode spark|2m|$sp run --workers 2 --seed 1 --split-mode spark --quiet --input IN --output OUT")
[ -n "$compare" ] && configs+=("before: run --workers 2 --split-mode spark|2m|$compare run --workers 2 --seed 1 --split-mode spark --quiet --input IN --output OUT")

# lines prints the sorted lines of every output file under dir, as one hash.
lines() { find "$1" -path '*/_shardprep' -prune -o -type f ! -name _SUCCESS -print0 | xargs -0 cat | LC_ALL=C sort -S 1G | sha256sum | cut -d' ' -f1; }

declare -A want checked
results="$data/results.txt"
if [ -n "$report" ]; then
  results=$report rounds=$(awk -F'|' 'NR == 1 { k = $1 "|" $2 } $1 "|" $2 == k { n++ } END { print n }' "$report")
else
  : >"$results"
fi
[ -n "$report" ] && rounds_run=0 || rounds_run=$rounds
for ((r = 1; r <= rounds_run; r++)); do
  for c in "${configs[@]}"; do
    IFS='|' read -r name size cmd <<<"$c"
    in="$data/abalone-$size.csv" out="$work/out"
    rm -rf "$out"
    if [ "$name" = limit ]; then mkdir -p "$out"; fi
    cmd=${cmd//IN/$in}
    cmd=${cmd//OUT/$out}
    # shellcheck disable=SC2086
    /usr/bin/time -f '%e %U %S %M' -o "$work/time" $cmd >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
    read -r wall user sys rss <"$work/time"
    echo "$name|$size|$wall|$user|$sys|$rss" >>"$results"
    echo "round $r: $name ($size): ${wall}s" >&2
    if [ -z "${checked[$name|$size]:-}" ]; then
      h=$(lines "$out")
      if [ "$name" = limit-pass ]; then
        want[$size]=$h
      elif [ -n "${want[$size]:-}" ] && [ "$h" != "${want[$size]}" ]; then
        echo "bench.sh: $name on $size: output lines differ from limit-pass's" >&2
        exit 1
      fi
      checked[$name|$size]=1
    fi
    rm -rf "$out"
  done
done

# Medians per configuration and size: wall, CPU (user+sys), peak RSS.
declare -A wall cpu rss
while IFS='|' read -r name size w c m; do
  wall[$name|$size]=$w cpu[$name|$size]=$c rss[$name|$size]=$m
done < <(awk -F'|' '
  { k = $1 "|" $2; n[k]++; W[k, n[k]] = $3; C[k, n[k]] = $4 + $5; M[k, n[k]] = $6; if (!(k in seen)) { seen[k] = 1; order[++o] = k } }
  function med(A, k, cnt,   i, j, t, v) {
    for (i = 1; i <= cnt; i++) v[i] = A[k, i]
    for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
  }
  END { for (i = 1; i <= o; i++) { k = order[i]; printf "%s|%.3f|%.2f|%d\n", k, med(W, k, n[k]), med(C, k, n[k]), med(M, k, n[k]) } }
' "$results")

declare -A bytes
for s in "${sizes[@]}"; do bytes[$s]=$(stat -Lc %s "$data/abalone-$s.csv"); done
mbs() { awk -v b="${bytes[$2]}" -v w="${wall[$1|$2]}" 'BEGIN { printf "%.0f", b / w / 1e6 }'; }
cell() {
  local k="$1|$2"
  [ -n "${wall[$k]:-}" ] || { printf ' |'; return; }
  printf ' %.2f s, %s MB/s, %.2f CPU s, %s MiB |' "${wall[$k]}" "$(mbs "$1" "$2")" "${cpu[$k]}" "$((rss[$k] / 1024))"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); medians of $rounds interleaved rounds; wall, MB/s of input, CPU seconds (user+sys), peak RSS"
echo
header="| run |" sep="|---|"
for s in "${sizes[@]}"; do header+=" $s rows ($((bytes[$s] / 1000000)) MB) |"; sep+="---|"; done
echo "$header"
echo "$sep"
seen=""
for c in "${configs[@]}"; do
  IFS='|' read -r name _ _ <<<"$c"
  case "$seen" in *"[$name]"*) continue ;; esac
  seen+="[$name]"
  line="| \`$name\` |"
  for s in "${sizes[@]}"; do line+=$(cell "$name" "$s"); done
  echo "$line"
done
echo
w2="run --workers 2"
echo "| goal | measured | bar |"
echo "|---|---|---|"
echo "| 10M MB/s, \`$w2\` / \`limit-pass\` | $(ratio "${wall[limit-pass|10m]}" "${wall[$w2|10m]}") | >= 1.2 |"
echo "| 10M CPU s, \`$w2\` / \`limit-pass\` | $(ratio "${cpu[$w2|10m]}" "${cpu[limit-pass|10m]}") | <= 1.6 |"
echo "| \`$w2\` MB/s, 2M / 10M | $(awk -v a="$(mbs "$w2" 2m)" -v b="$(mbs "$w2" 10m)" 'BEGIN { printf "%.2f", a / b }') | >= 0.85 |"
echo "| 2M wall, spark / hash split | $(ratio "${wall[$w2 --split-mode spark|2m]}" "${wall[$w2|2m]}") | <= 2 |"
peak=0
for s in "${sizes[@]}"; do [ "${rss[$w2|$s]}" -gt "$peak" ] && peak=${rss[$w2|$s]}; done
echo "| peak RSS, \`$w2\`, any size | $((peak / 1024)) MiB | <= 128 MiB |"
if [ "$huge" = 1 ]; then
  echo "| 100M wall / (10 x 10M wall), \`$w2\` | $(awk -v a="${wall[$w2|100m]}" -v b="${wall[$w2|10m]}" 'BEGIN { printf "%.2f", a / (10 * b) }') | 0.9 to 1.1 |"
fi
