#!/usr/bin/env bash
# Fetch and run a real single-node Apache Kafka broker (KRaft, broker+controller)
# on 127.0.0.1 for tests, CI and local development.
#
# Usage: scripts/kafka-broker.sh {start|stop|status|fetch|logs [-f] [N]|reset|help}
#
#   start   fetch if needed, format storage once, start in the background and
#           wait until the broker answers a Metadata request (idempotent: exits 0
#           if a Kafka broker already answers on KAFKA_PORT)
#   stop    stop the broker started by this script (SIGTERM, SIGKILL after 30 s)
#   status  exit 0 if a broker answers on KAFKA_PORT, 3 if not
#   fetch   only download Kafka and its runtime dependencies (Maven Central)
#   logs    print the last N (default 100) lines of the broker log; -f follows
#   reset   stop, then delete the data dir (topics, offsets, cluster id)
#
# Environment (defaults):
#   KAFKA_PORT=19092               client listener (PLAINTEXT://127.0.0.1:PORT)
#   KAFKA_CONTROLLER_PORT=19093    KRaft controller listener
#   KAFKA_DATA_DIR=<repo>/.cache/kafka/data-$KAFKA_PORT
#   KAFKA_HEAP="-Xmx512m -Xms256m"
#   KAFKA_START_TIMEOUT=90         seconds to wait for readiness
#   KAFKA_JVM_OPTS=""              extra JVM options
#   KAFKA_MVN_ARGS=""              extra Maven args for fetch (e.g. -Dmaven.repo.local=...)
#   JAVA_HOME                      used if set, else `java` from PATH (needs Java >= 17)
#
# Layout: <repo>/.cache/kafka/<version>/libs/*.jar (+ .complete marker);
#         $KAFKA_DATA_DIR/{server.properties,log4j2.properties,cluster.id,
#                          kafka.pid,kafka.out,logs/server.log,kraft-logs/}
set -euo pipefail

KAFKA_VERSION="4.1.1"           # pinned; needs Java 17+
SCALA_VERSION="2.13"
LOG4J_VERSION="2.24.3"          # same log4j2 as kafka-server 4.1.1 pulls in
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CACHE_ROOT="$REPO_ROOT/.cache/kafka"
VERSION_DIR="$CACHE_ROOT/$KAFKA_VERSION"
LIBS_DIR="$VERSION_DIR/libs"
MARKER="$VERSION_DIR/.complete"

KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$CACHE_ROOT/data-$KAFKA_PORT}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx512m -Xms256m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_MVN_ARGS="${KAFKA_MVN_ARGS:-}"

HOST="127.0.0.1"

log() { printf 'kafka-broker: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
  [[ "$p" =~ ^[0-9]+$ ]] && (( p > 0 && p < 65536 )) || die "invalid port: $p"
done
[[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
# Absolute data dir (a relative KAFKA_DATA_DIR is taken relative to the cwd).
case "$KAFKA_DATA_DIR" in /*) ;; *) KAFKA_DATA_DIR="$PWD/$KAFKA_DATA_DIR" ;; esac

PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
OUT_FILE="$KAFKA_DATA_DIR/kafka.out"
LOG_DIR="$KAFKA_DATA_DIR/logs"
LOG_FILE="$LOG_DIR/server.log"
META_DIR="$KAFKA_DATA_DIR/kraft-logs"
SERVER_PROPS="$KAFKA_DATA_DIR/server.properties"
LOG4J_PROPS="$KAFKA_DATA_DIR/log4j2.properties"
CLUSTER_ID_FILE="$KAFKA_DATA_DIR/cluster.id"

java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    echo "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    die "java not found (Kafka $KAFKA_VERSION needs Java 17+; set JAVA_HOME or install openjdk-17-jre-headless)"
  fi
}

check_java() {
  local java ver major
  java="$(java_bin)"
  ver="$("$java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
  major="${ver%%.*}"
  [[ "$major" == "1" ]] && major="$(echo "$ver" | cut -d. -f2)"
  [[ "$major" =~ ^[0-9]+$ ]] || die "cannot parse Java version from '$java -version'"
  (( major >= 17 )) || die "Kafka $KAFKA_VERSION needs Java 17+, found $ver ($java)"
}

# ---------------------------------------------------------------- probes

# Exit 0 if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Exit 0 if a Kafka broker on 127.0.0.1:$1 answers a Metadata (v4) request with
# at least one broker. Uses only the Python standard library; without python3
# it falls back to a TCP check.
kafka_answers() {
  local port="$1"
  if ! command -v python3 >/dev/null 2>&1; then
    port_open "$port"
    return
  fi
  python3 - "$HOST" "$port" <<'PY' 2>/dev/null
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
client_id = b"kafka-broker.sh"
# Request header v1 + MetadataRequest v4: topics=null (all), allow_auto_topic_creation=false
body = struct.pack(">hhih", 3, 4, 4242, len(client_id)) + client_id + struct.pack(">ib", -1, 0)
try:
    with socket.create_connection((host, port), timeout=2) as s:
        s.settimeout(3)
        s.sendall(struct.pack(">i", len(body)) + body)
        def recv(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise EOFError
                buf += chunk
            return buf
        (size,) = struct.unpack(">i", recv(4))
        resp = recv(size)
    corr, _throttle, nbrokers = struct.unpack(">iii", resp[:12])
    sys.exit(0 if corr == 4242 and nbrokers >= 1 else 1)
except Exception:
    sys.exit(1)
PY
}

pid_alive() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

# ---------------------------------------------------------------- fetch

write_pom() {
  cat >"$VERSION_DIR/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by scripts/kafka-broker.sh: Kafka broker runtime classpath -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.kafka-broker</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- Kafka logs through slf4j 1.7 -> log4j2; the binding is not a transitive dep. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
}

do_fetch() {
  [[ -f "$MARKER" ]] && return 0
  command -v mvn >/dev/null 2>&1 || die "mvn not found (needed once to fetch Kafka $KAFKA_VERSION; apt-get install maven)"
  mkdir -p "$VERSION_DIR"
  (
    # Serialise concurrent fetches (parallel CI jobs, several shells).
    if command -v flock >/dev/null 2>&1; then
      exec 9>"$VERSION_DIR/.fetch.lock"
      flock 9
    fi
    [[ -f "$MARKER" ]] && exit 0
    log "fetching Kafka $KAFKA_VERSION (Scala $SCALA_VERSION) and runtime deps from Maven Central..."
    local start=$SECONDS tmp
    write_pom
    tmp="$VERSION_DIR/libs.tmp.$$"
    rm -rf "$tmp"
    # shellcheck disable=SC2086
    if ! mvn -B -q -f "$VERSION_DIR/pom.xml" $KAFKA_MVN_ARGS \
        "$DEP_PLUGIN:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$tmp" \
        >"$VERSION_DIR/fetch.log" 2>&1; then
      tail -n 40 "$VERSION_DIR/fetch.log" >&2 || true
      rm -rf "$tmp"
      die "Maven fetch failed (full log: $VERSION_DIR/fetch.log)"
    fi
    [[ -f "$tmp/kafka_$SCALA_VERSION-$KAFKA_VERSION.jar" ]] || die "kafka_$SCALA_VERSION-$KAFKA_VERSION.jar missing after fetch"
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    (cd "$LIBS_DIR" && ls -1 *.jar) >"$MARKER.tmp"
    mv "$MARKER.tmp" "$MARKER"
    log "fetched $(wc -l <"$MARKER") jars into $LIBS_DIR in $((SECONDS - start))s"
  )
}

# ---------------------------------------------------------------- config

write_configs() {
  mkdir -p "$KAFKA_DATA_DIR" "$LOG_DIR" "$META_DIR"
  cat >"$SERVER_PROPS" <<EOF
# generated by scripts/kafka-broker.sh on each start; edits are overwritten
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$META_DIR

# small machine / tests
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=33554432

# single node: every internal topic with RF 1
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1

# clients that create topics and consumer groups on the fly (aiokafka, Faust)
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0

# keep test data regardless of record timestamps; wipe with 'reset'
log.retention.ms=-1
log.retention.bytes=-1
log.segment.bytes=67108864
EOF
  cat >"$LOG4J_PROPS" <<EOF
# generated by scripts/kafka-broker.sh
status = warn
name = kafka-broker
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $LOG_FILE
appender.file.filePattern = $LOG_FILE.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

classpath() { echo "$LIBS_DIR/*"; }

format_storage() {
  [[ -f "$META_DIR/meta.properties" ]] && return 0
  local cid
  if [[ -s "$CLUSTER_ID_FILE" ]]; then
    cid="$(cat "$CLUSTER_ID_FILE")"
  else
    # Kafka cluster ids are 16 random bytes, URL-safe base64 without padding. Like Kafka's own Uuid.randomUuid,
    # never one that starts with "-": the storage tool would read it as an option (1 start in 64 failed so).
    cid="-"
    while [[ "$cid" == -* ]]; do
      cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    echo "$cid" >"$CLUSTER_ID_FILE"
  fi
  log "formatting KRaft storage in $META_DIR (cluster id $cid)"
  # shellcheck disable=SC2086
  if ! "$(java_bin)" -Xmx256m -Dlog4j2.configurationFile="$LOG4J_PROPS" \
      -cp "$(classpath)" kafka.tools.StorageTool format \
      --cluster-id="$cid" -c "$SERVER_PROPS" --ignore-formatted \
      >>"$OUT_FILE" 2>&1; then
    tail -n 30 "$OUT_FILE" >&2 || true
    die "storage format failed"
  fi
}

# ---------------------------------------------------------------- commands

print_log_tail() {
  local n="${1:-60}"
  if [[ -f "$OUT_FILE" ]]; then
    log "---- last lines of $OUT_FILE ----"
    tail -n 20 "$OUT_FILE" >&2 || true
  fi
  if [[ -f "$LOG_FILE" ]]; then
    log "---- last $n lines of $LOG_FILE ----"
    tail -n "$n" "$LOG_FILE" >&2 || true
  fi
}

wait_ready() {
  local pid="$1" t0=$SECONDS
  while (( SECONDS - t0 < KAFKA_START_TIMEOUT )); do
    if kafka_answers "$KAFKA_PORT"; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker process $pid exited during startup"
      print_log_tail
      rm -f "$PID_FILE"
      return 1
    fi
    sleep 0.25
  done
  log "broker not ready after ${KAFKA_START_TIMEOUT}s (pid $pid still running; see 'logs' / 'stop')"
  print_log_tail
  return 1
}

cmd_start() {
  local pid t0
  if kafka_answers "$KAFKA_PORT"; then
    echo "Kafka already running on $HOST:$KAFKA_PORT"
    return 0
  fi
  if pid="$(pid_alive)"; then
    # Started by an earlier/concurrent 'start' but not ready yet.
    log "broker pid $pid is starting; waiting for it"
    wait_ready "$pid" || exit 1
    echo "Kafka ready on $HOST:$KAFKA_PORT (pid $pid)"
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    die "port $HOST:$KAFKA_PORT is taken by something that does not answer as Kafka"
  fi
  if port_open "$KAFKA_CONTROLLER_PORT"; then
    die "controller port $HOST:$KAFKA_CONTROLLER_PORT is already in use"
  fi
  check_java
  do_fetch
  write_configs
  format_storage

  t0=$SECONDS
  : >"$OUT_FILE"
  # shellcheck disable=SC2086
  setsid nohup "$(java_bin)" \
    $KAFKA_HEAP \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_PROPS" \
    -Dkafka.logs.dir="$LOG_DIR" \
    $KAFKA_JVM_OPTS \
    -cp "$(classpath)" kafka.Kafka "$SERVER_PROPS" \
    >>"$OUT_FILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  log "started Kafka $KAFKA_VERSION (pid $pid) on $HOST:$KAFKA_PORT, data dir $KAFKA_DATA_DIR; waiting for readiness"
  wait_ready "$pid" || exit 1
  echo "Kafka ready on $HOST:$KAFKA_PORT (pid $pid, $((SECONDS - t0))s)"
}

cmd_stop() {
  local pid i
  if ! pid="$(pid_alive)"; then
    rm -f "$PID_FILE"
    if port_open "$KAFKA_PORT"; then
      die "no broker started by this script (pid file $PID_FILE), but $HOST:$KAFKA_PORT is in use"
    fi
    echo "Kafka not running"
    return 0
  fi
  log "stopping Kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 120; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still running after 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PID_FILE"
  echo "Kafka stopped"
}

cmd_status() {
  local pid=""
  pid="$(pid_alive || true)"
  if kafka_answers "$KAFKA_PORT"; then
    echo "running: Kafka answers on $HOST:$KAFKA_PORT${pid:+ (pid $pid)}; version $KAFKA_VERSION; data dir $KAFKA_DATA_DIR"
    return 0
  fi
  if [[ -n "$pid" ]]; then
    echo "starting or unhealthy: pid $pid alive but $HOST:$KAFKA_PORT does not answer"
  else
    echo "not running (port $KAFKA_PORT)"
  fi
  exit 3
}

cmd_logs() {
  local follow="" n=100 a
  for a in "$@"; do
    case "$a" in
      -f|--follow) follow=1 ;;
      ''|*[!0-9]*) die "usage: logs [-f] [N]" ;;
      *) n="$a" ;;
    esac
  done
  [[ -f "$LOG_FILE" ]] || die "no log yet at $LOG_FILE"
  if [[ -n "$follow" ]]; then
    exec tail -n "$n" -F "$LOG_FILE"
  fi
  tail -n "$n" "$LOG_FILE"
}

cmd_reset() {
  cmd_stop
  case "$KAFKA_DATA_DIR" in
    /|"$REPO_ROOT"|"$HOME") die "refusing to delete $KAFKA_DATA_DIR" ;;
  esac
  rm -rf "$KAFKA_DATA_DIR"
  echo "deleted $KAFKA_DATA_DIR"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'
}

main() {
  local cmd="${1:-help}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    start)  cmd_start ;;
    stop)   cmd_stop ;;
    status) cmd_status ;;
    fetch)  check_java; do_fetch; echo "Kafka $KAFKA_VERSION libs in $LIBS_DIR" ;;
    logs)   cmd_logs "$@" ;;
    reset)  cmd_reset ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
