#!/usr/bin/env bash
# MinIO test environment for shardprep.
#
#   scripts/minio.sh install         build minio and mc into $SHARDPREP_CACHE/bin (cached)
#   scripts/minio.sh start ENV_FILE  start a private MinIO on a free loopback port and write
#                                    its settings to ENV_FILE (export lines, for `source`)
#   scripts/minio.sh stop ENV_FILE   stop that server and remove its data
#
# Each start is independent (own port, data dir, passwords), so several can run at once.
# The server has bucket "shardprep" and two users: usera may read and write Product/* and
# UserA/*, userb Product/* and UserB/*.
set -euo pipefail

cache="${SHARDPREP_CACHE:-$HOME/.cache/shardprep}"
bin="$cache/bin"
minio_module="github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
mc_module="github.com/minio/mc@v0.0.0-20250313080218-cf909e1063a9"
bucket=shardprep

die() { echo "minio.sh: $*" >&2; exit 1; }

need_go() {
  command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null 2>&1 || die "go not found (looked in PATH and /usr/local/go/bin)"
}

install() {
  mkdir -p "$bin"
  local name module
  for name in minio mc; do
    [ -x "$bin/$name" ] && continue
    need_go
    module=$minio_module
    [ "$name" = mc ] && module=$mc_module
    echo "minio.sh: building $name into $bin (this takes a few minutes once)" >&2
    GOBIN="$bin" GOFLAGS=-buildvcs=false go install "$module" || die "go install $module failed"
  done
}

# secret prints 32 random hex characters.
secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# port_free PORT succeeds when nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p i
  for i in $(seq 1 100); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if port_free "$p"; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

# http_ok URL succeeds when URL answers 200.
http_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O /dev/null -T 2 "$1" 2>/dev/null
  else
    local hostport=${1#http://}; hostport=${hostport%%/*}
    local path=/${1#http://*/}
    exec 3<>"/dev/tcp/${hostport%:*}/${hostport#*:}" 2>/dev/null || return 1
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
    local status
    read -r -t 2 _ status _ <&3 || true
    exec 3>&-
    [ "$status" = 200 ]
  fi
}

# user_policy PRIVATE_PREFIX prints a policy granting read-write on Product/* and PRIVATE_PREFIX/*.
# MinIO rejects an s3:prefix condition on s3:ListBucketMultipartUploads, so that action is
# granted on the whole bucket (it lists in-progress uploads, never object data).
user_policy() {
  cat <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                 "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      "Resource": ["arn:aws:s3:::$bucket/Product/*", "arn:aws:s3:::$bucket/$1/*"]
    },
    {
      "Effect": "Allow",
      "Action": ["s3:ListBucket"],
      "Resource": ["arn:aws:s3:::$bucket"],
      "Condition": {"StringLike": {"s3:prefix": ["Product/*", "$1/*"]}}
    },
    {
      "Effect": "Allow",
      "Action": ["s3:ListBucketMultipartUploads"],
      "Resource": ["arn:aws:s3:::$bucket"]
    }
  ]
}
JSON
}

start() {
  local envfile=${1:-}
  [ -n "$envfile" ] || die "usage: minio.sh start ENV_FILE"
  [ -x "$bin/minio" ] && [ -x "$bin/mc" ] || die "minio/mc missing in $bin: run 'scripts/minio.sh install'"
  local dir pid port cport user pass attempt
  dir=$(mktemp -d "${TMPDIR:-/tmp}/shardprep-minio.XXXXXX")
  mkdir -p "$dir/data" "$dir/mc"
  user=root$(secret | cut -c1-8)
  pass=$(secret)

  for attempt in 1 2 3; do
    port=$(free_port)
    cport=$(free_port)
    [ "$port" != "$cport" ] || continue
    MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$pass MINIO_UPDATE=off MINIO_BROWSER=off \
      nohup "$bin/minio" server --quiet --address "127.0.0.1:$port" \
      --console-address "127.0.0.1:$cport" "$dir/data" >"$dir/minio.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/minio.pid"
    local ready=
    for _ in $(seq 1 120); do   # up to 60s
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if http_ok "http://127.0.0.1:$port/minio/health/ready"; then ready=1; break; fi
      sleep 0.5
    done
    [ -n "$ready" ] && break
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      echo "minio.sh: MinIO did not become ready on 127.0.0.1:$port within 60s; its log:" >&2
      cat "$dir/minio.log" >&2
      rm -rf "$dir"
      exit 1
    fi
    echo "minio.sh: MinIO exited on start (attempt $attempt, port $port); its log:" >&2
    cat "$dir/minio.log" >&2
  done
  [ -n "${ready:-}" ] || { rm -rf "$dir"; die "could not start MinIO"; }

  local endpoint="http://127.0.0.1:$port"
  local mc=("$bin/mc" --config-dir "$dir/mc" --quiet --no-color)
  local ua ub
  ua=$(secret); ub=$(secret)
  {
    "${mc[@]}" alias set local "$endpoint" "$user" "$pass"
    "${mc[@]}" mb "local/$bucket"
    "${mc[@]}" admin user add local usera "$ua"
    "${mc[@]}" admin user add local userb "$ub"
    user_policy UserA >"$dir/usera.json"
    user_policy UserB >"$dir/userb.json"
    "${mc[@]}" admin policy create local shardprep-usera "$dir/usera.json"
    "${mc[@]}" admin policy create local shardprep-userb "$dir/userb.json"
    "${mc[@]}" admin policy attach local shardprep-usera --user usera
    "${mc[@]}" admin policy attach local shardprep-userb --user userb
  } >"$dir/setup.log" 2>&1 || {
    echo "minio.sh: setting up MinIO failed; mc output:" >&2
    cat "$dir/setup.log" >&2
    kill "$pid" 2>/dev/null || true
    rm -rf "$dir"
    exit 1
  }

  umask 077
  cat >"$envfile" <<ENV
export SHARDPREP_MINIO_ENDPOINT='$endpoint'
export SHARDPREP_MINIO_ROOT_USER='$user'
export SHARDPREP_MINIO_ROOT_PASSWORD='$pass'
export SHARDPREP_MINIO_BUCKET='$bucket'
export SHARDPREP_MINIO_USERA_KEY='usera'
export SHARDPREP_MINIO_USERA_SECRET='$ua'
export SHARDPREP_MINIO_USERB_KEY='userb'
export SHARDPREP_MINIO_USERB_SECRET='$ub'
export SHARDPREP_MINIO_BIN='$bin'
export SHARDPREP_MINIO_DIR='$dir'
ENV
  echo "minio.sh: MinIO ready at $endpoint (pid $pid, data $dir)" >&2
}

stop() {
  local envfile=${1:-}
  [ -n "$envfile" ] || die "usage: minio.sh stop ENV_FILE"
  [ -f "$envfile" ] || return 0
  local dir
  dir=$(sed -n "s/^export SHARDPREP_MINIO_DIR='\(.*\)'$/\1/p" "$envfile")
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  local pid
  pid=$(cat "$dir/minio.pid" 2>/dev/null || true)
  # Only signal the process if it is still the minio this script started.
  if [ -n "$pid" ] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = minio ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  rm -f "$envfile"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) die "usage: minio.sh install | start ENV_FILE | stop ENV_FILE" ;;
esac
