#!/usr/bin/env bash
# Install (if needed) and start a real single-node Slurm cluster with accounting:
#   munged -> MariaDB -> slurmdbd -> (cluster/account/users) -> slurmctld -> slurmd -> slurmrestd
# Debian 12 packages (Slurm 22.05), no systemd: every daemon is started by hand.
# Idempotent: each component is checked first and only started when it is down.
# Must run as root. Nothing secret (DB password, JWT) is ever printed.
#
# Environment:
#   SLURM_REST_PORT        port for slurmrestd (default 6820)
#   JOBMON_TEMPORAL_CACHE  cache dir for token + env file (default ~/.cache/jobmon-temporal)
#   SLURM_UP_TIMEOUT       seconds to wait for each component (default 60)
set -euo pipefail

CLUSTER=jobmon
ACCOUNT=jobmon
REST_PORT=${SLURM_REST_PORT:-6820}
REST_URL="http://127.0.0.1:${REST_PORT}"
REST_LINUX_USER=slurmrest        # slurmrestd refuses to run as root or SlurmUser
CACHE=${JOBMON_TEMPORAL_CACHE:-$HOME/.cache/jobmon-temporal}
TIMEOUT=${SLURM_UP_TIMEOUT:-60}
CONF=/etc/slurm
LOGS=/var/log/slurm
JWT_KEY=$CONF/jwt_hs256.key
DB_NAME=slurm_acct_db
DB_USER=slurm
NODE=$(hostname -s)
PACKAGES=(munge slurmctld slurmd slurmdbd slurmrestd slurm-client
          slurm-wlm-jwt-plugin   # auth/jwt is NOT pulled in by any of the above
          curl)
START_TIME=$SECONDS

log() { echo "slurm-up: $*"; }
die() { echo "slurm-up: ERROR: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"

# Parallel callers (e.g. several test workers) must not start daemons twice.
# Every daemon below is started with 9>&- so it does not inherit (and keep) this lock.
LOCK=/run/lock/jobmon-slurm-up.lock
mkdir -p /run/lock
exec 9>"$LOCK"
flock -w 300 9 || die "another slurm-up.sh holds $LOCK"

# --- helpers -----------------------------------------------------------------

# pid_of NAME PIDFILE: print the pid of a running daemon NAME, using its pid file
# (ignoring stale ones: the pid must exist and be that program, not a zombie).
pid_of() {
  local name=$1 pidfile=$2 pid
  if [[ -s $pidfile ]]; then
    pid=$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)
    if [[ -n $pid ]] && running "$pid" "$name"; then echo "$pid"; return 0; fi
  fi
  return 1
}
# running PID NAME: PID exists, is program NAME and is not a zombie (just killed).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" && ${stat##*) } != Z* ]]
}

# stop_daemon NAME PIDFILE: TERM, wait up to 20 s, then KILL (config changed, or hung daemon).
stop_daemon() {
  local name=$1 pidfile=$2 pid i
  pid=$(pid_of "$name" "$pidfile") || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do
    running "$pid" "$name" || { rm -f "$pidfile"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# wait_until COMPONENT LOGFILE CMD...: poll CMD until it succeeds or TIMEOUT passes;
# on timeout name the component, show the end of its log and exit non-zero.
wait_until() {
  local what=$1 logfile=$2; shift 2
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "slurm-up: ERROR: $what did not come up within ${TIMEOUT}s; see $logfile" >&2
      [[ -f $logfile ]] && tail -n 25 "$logfile" | sed 's/^/    /' >&2
      exit 1
    fi
    sleep 0.5
  done
}

# install_if_changed FILE MODE OWNER: replace FILE with stdin only if the content differs.
# Returns 0 when the file was (re)written, 1 when unchanged.
install_if_changed() {
  local file=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp "$file.XXXXXX")
  chmod 600 "$tmp"   # created private before content lands (slurmdbd.conf holds a password)
  cat >"$tmp"
  if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    chmod "$mode" "$file"; chown "$owner" "$file"
    return 1
  fi
  chmod "$mode" "$tmp"; chown "$owner" "$tmp"
  mv -f "$tmp" "$file"
  return 0
}

munge_ok()      { munge -n </dev/null | unmunge >/dev/null; }
mariadb_ok()    { mariadb -e 'select 1'; }
slurmdbd_ok()   { timeout 10 sacctmgr -n -P show cluster format=cluster; }
slurmctld_ok()  { timeout 10 scontrol ping | grep -q 'is UP'; }
node_state()    { timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1; }
rest_http_code(){ curl -s -o /dev/null -m 5 -w '%{http_code}' "$REST_URL/openapi/v3" || true; }
rest_ok()       { [[ $(rest_http_code) =~ ^[1-5][0-9][0-9]$ ]]; }   # any HTTP answer (401 too)

# --- packages ----------------------------------------------------------------

missing=()
for p in "${PACKAGES[@]}"; do
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi

# The package may not have created these (and /run is a tmpfs).
install -d -o slurm -g slurm -m 0755 "$CONF" "$LOGS" /var/lib/slurm /var/lib/slurm/slurmctld
install -d -o root -g root -m 0755 /var/lib/slurm/slurmd
[[ -d $CACHE ]] || install -d -m 0700 "$CACHE"   # shared with other tools: don't chmod it
if ! id "$REST_LINUX_USER" >/dev/null 2>&1; then
  log "creating Linux user $REST_LINUX_USER"
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$REST_LINUX_USER"
fi

# --- munged ------------------------------------------------------------------

install -d -o munge -g munge -m 0755 /run/munge   # munged refuses to start without it
if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating munge key"
  runuser -u munge -- mungekey --create --force
fi
if ! pid_of munged /run/munge/munged.pid >/dev/null || ! munge_ok 2>/dev/null; then
  stop_daemon munged /run/munge/munged.pid   # alive but not answering: restart it
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged --force 9>&-   # --force: ignore a stale socket after kill -9
fi
wait_until munged /var/log/munge/munged.log munge_ok

# --- MariaDB (normally already running) --------------------------------------

if ! mariadb_ok >/dev/null 2>&1; then
  [[ -x /usr/sbin/mariadbd ]] || die "MariaDB is not reachable and /usr/sbin/mariadbd is not installed (apt-get install mariadb-server)"
  log "starting MariaDB"
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd 9>&-
fi
wait_until MariaDB /var/log/mysql/error.log mariadb_ok

# --- configuration -----------------------------------------------------------

# JWT signing key shared by slurmctld and slurmdbd; slurmrestd forwards users' tokens.
if [[ ! -s $JWT_KEY ]]; then
  log "creating JWT key $JWT_KEY"
  (umask 077; head -c 32 /dev/urandom >"$JWT_KEY")
fi
chown slurm:slurm "$JWT_KEY"; chmod 0600 "$JWT_KEY"

# Keep the DB password across runs (it lives only in slurmdbd.conf, mode 0600).
DB_PASS=$(sed -n 's/^StoragePass=//p' "$CONF/slurmdbd.conf" 2>/dev/null | head -n1 || true)
[[ -n $DB_PASS ]] || DB_PASS=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')

# Dedicated MariaDB user + database; SQL goes over stdin so the password is not in argv.
# skip-name-resolve is common, so TCP from 127.0.0.1 needs its own account row.
mariadb <<SQL
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
SQL

dbd_conf_changed=0
install_if_changed "$CONF/slurmdbd.conf" 0600 slurm:slurm <<EOF && dbd_conf_changed=1
# Generated by scripts/slurm-up.sh
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=$LOGS/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
unset DB_PASS

# Node hardware exactly as slurmd sees it (a RealMemory above the real one drains the node).
node_hw=$(slurmd -C | sed -n "s/^NodeName=[^ ]* //p" | head -n1)
[[ $node_hw == *RealMemory=* ]] || die "could not read node hardware from 'slurmd -C'"

# Memory limits enforced as production clusters do: task/cgroup confines each job to its --mem in a memory
# cgroup, and a job that outgrows it is OOM-killed and ends OUT_OF_MEMORY in accounting. This machine kind
# mounts cgroup v1 controllers (memory among them). Without a writable v1 memory controller, over-limit
# steps are killed from the gathered usage instead (OverMemoryKill), and Slurm records such a job FAILED.
if [[ -w /sys/fs/cgroup/memory/cgroup.procs ]]; then
  task_plugin=task/cgroup
  gather_params="# Memory limits: task/cgroup (cgroup.conf)."
else
  task_plugin=task/none
  gather_params="JobAcctGatherParams=OverMemoryKill"
  log "no writable cgroup v1 memory controller: memory limits enforced by OverMemoryKill (jobs over --mem end FAILED, not OUT_OF_MEMORY)"
fi
slurm_conf_changed=0
install_if_changed "$CONF/cgroup.conf" 0644 slurm:slurm <<EOF && slurm_conf_changed=1
# Generated by scripts/slurm-up.sh: memory confinement only (no cores, devices or swap here).
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
CgroupAutomount=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
AllowedSwapSpace=0
ConstrainCores=no
ConstrainDevices=no
EOF
install_if_changed "$CONF/slurm.conf" 0644 slurm:slurm <<EOF && slurm_conf_changed=1
# Generated by scripts/slurm-up.sh: single-node cluster for jobmon-temporal tests.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
# JWT lets slurmrestd act for users (same two lines in slurmdbd.conf).
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
MpiDefault=none
# Processes tracked via /proc; tasks confined to their --mem by a memory cgroup where there is one.
ProctrackType=proctrack/linuxproc
TaskPlugin=$task_plugin
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# A node that was down comes back by itself once slurmd registers.
ReturnToService=2
SchedulerType=sched/backfill
# Memory is a consumable resource so --mem works (and is enforced, below); a default per CPU that a small job without --mem stays under.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
# Without a gather plugin no usage (MaxRSS, CPU time) is recorded at all.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
$gather_params
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/none
# Nothing to mail from here; silences "Configured MailProg is invalid".
MailProg=/bin/true
# Short timeouts: this is a test cluster.
MinJobAge=30
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MessageTimeout=10
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 $node_hw State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=1-00:00:00 DefaultTime=01:00:00 State=UP
EOF

# A changed config only takes effect after a restart of the daemons that read it.
if ((dbd_conf_changed)); then
  stop_daemon slurmdbd /run/slurmdbd.pid
fi
if ((slurm_conf_changed)); then
  stop_daemon slurmrestd /run/slurmrestd.pid
  stop_daemon slurmd /run/slurmd.pid
  stop_daemon slurmctld /run/slurmctld.pid
fi

# --- slurmdbd + accounting entities ------------------------------------------

if ! pid_of slurmdbd /run/slurmdbd.pid >/dev/null; then
  log "starting slurmdbd"
  /usr/sbin/slurmdbd 9>&-   # daemonizes; drops to SlurmUser itself
fi
wait_until slurmdbd $LOGS/slurmdbd.log slurmdbd_ok

# slurmctld registers the cluster too, but associations need it to exist first.
sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER" ||
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -n -P show account "$ACCOUNT" format=account | grep -qx "$ACCOUNT" ||
  sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="jobmon tests" Organization=jobmon >/dev/null
for u in root "$REST_LINUX_USER"; do
  sacctmgr -n -P show assoc where cluster="$CLUSTER" account="$ACCOUNT" user="$u" format=user | grep -qx "$u" ||
    sacctmgr -i add user "$u" Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
done

# --- slurmctld ---------------------------------------------------------------

if ! pid_of slurmctld /run/slurmctld.pid >/dev/null; then
  log "starting slurmctld"
  /usr/sbin/slurmctld 9>&-
fi
wait_until slurmctld $LOGS/slurmctld.log slurmctld_ok

# --- slurmd ------------------------------------------------------------------

if ! pid_of slurmd /run/slurmd.pid >/dev/null; then
  log "starting slurmd"
  /usr/sbin/slurmd 9>&-
fi
# Node must be usable: resume it when it is down/drained while slurmd answers (no '*').
node_ready_or_resume() {
  local s
  s=$(node_state)
  [[ $s =~ ^(idle|mixed|allocated|completing)$ ]] && return 0
  if [[ $s =~ ^(down|drained|draining|drain)$ ]]; then
    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
  fi
  return 1
}
wait_until "slurmd (node $NODE idle)" $LOGS/slurmd.log node_ready_or_resume

# --- slurmrestd --------------------------------------------------------------

if ! pid_of slurmrestd /run/slurmrestd.pid >/dev/null; then
  log "starting slurmrestd on $REST_URL as $REST_LINUX_USER"
  touch $LOGS/slurmrestd.log; chown "$REST_LINUX_USER" $LOGS/slurmrestd.log
  # SLURM_JWT=daemon: slurmrestd itself has no token; each request brings the user's.
  SLURM_JWT=daemon start-stop-daemon --start --background --make-pidfile \
    --pidfile /run/slurmrestd.pid --chuid "$REST_LINUX_USER" \
    --output $LOGS/slurmrestd.log --exec /usr/sbin/slurmrestd -- \
    -a rest_auth/jwt -s openapi/dbv0.0.38,openapi/v0.0.38 "127.0.0.1:$REST_PORT" 9>&-
fi
wait_until slurmrestd $LOGS/slurmrestd.log rest_ok

# --- token + env file --------------------------------------------------------

JWT_FILE=$CACHE/slurm.jwt
# mint_token USER: write a fresh 24 h token for USER into JWT_FILE (0600), never echo it.
mint_token() {
  local out
  out=$(scontrol token lifespan=86400 username="$1") || return 1
  (umask 077; printf '%s\n' "${out#SLURM_JWT=}" >"$JWT_FILE.tmp")
  mv -f "$JWT_FILE.tmp" "$JWT_FILE"
}
# rest_works USER: the slurmdb API answers JSON without errors for USER's token.
rest_works() {
  local body
  body=$(curl -sf -m 10 -H "X-SLURM-USER-NAME: $1" -H "X-SLURM-USER-TOKEN: $(cat "$JWT_FILE")" \
    "$REST_URL/slurmdb/v0.0.38/cluster/$CLUSTER") || return 1
  [[ $body == *'"clusters"'* && $body != *'"error_number"'* ]]
}
REST_USER=
for u in root "$REST_LINUX_USER"; do
  if mint_token "$u" && rest_works "$u"; then REST_USER=$u; break; fi
done
[[ -n $REST_USER ]] || die "slurmrestd answers but no user's token is accepted; see $LOGS/slurmrestd.log"

(umask 077; cat >"$CACHE/slurm.env.tmp" <<EOF
SLURM_REST_URL=$REST_URL
SLURM_USER_NAME=$REST_USER
SLURM_JWT_FILE=$JWT_FILE
SLURM_CLUSTER_NAME=$CLUSTER
EOF
)
mv -f "$CACHE/slurm.env.tmp" "$CACHE/slurm.env"

log "Slurm cluster '$CLUSTER' is up on node $NODE ($((SECONDS - START_TIME))s)"
log "REST: $REST_URL (user $REST_USER); settings in $CACHE/slurm.env"
log "token (24 h) in $JWT_FILE; new one: scontrol token lifespan=86400 username=$REST_USER"
