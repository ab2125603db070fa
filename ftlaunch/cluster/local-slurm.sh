#!/usr/bin/env bash
# local-slurm.sh - Slurm cluster on localhost for tests/CI: one node (default), or several slurmd "nodes" on
# this one host (SLURM_LOCAL_NODES=2: n1 + n2 with typed fake GPUs, plus c1 without GPUs).
# Debian 12 (bookworm): slurm-wlm 22.05.8 + munge 0.5.15 (+ optional slurmdbd/MariaDB 10.11),
# no systemd, no cgroups, everything runs as root.
#
#   local-slurm.sh up        install (if missing), write conf, start daemons, wait until the nodes are idle
#   local-slurm.sh down      stop daemons by PID file (state and logs are kept)
#   local-slurm.sh purge     down + delete state, spool, logs, DB, and our /etc/hosts line
#   local-slurm.sh restart   down + up
#   local-slurm.sh status    daemon PIDs + sinfo
#   local-slurm.sh conf      only (re)write the conf files
#
# Idempotent: "up" on a running cluster only re-checks it; "down" on a stopped one is a no-op.
# Env: SLURM_LOCAL_ROOT  (default /tmp/slurm-local) state/spool/log/pid + generated conf
#      SLURM_LOCAL_CPUS  (default nproc, per node)  SLURM_LOCAL_GPUS (fake GPUs per node, default 4, 0 = none)
#      SLURM_LOCAL_DBD=1 also run MariaDB (own datadir, 127.0.0.1:3307) + slurmdbd so that plain `sacct`
#                        works (submitit polls `sacct`). 0 (default): no accounting DB; use `sacct -c`,
#                        `squeue --states=all` or `scontrol show job` (finished jobs kept MinJobAge=3600 s).
#      SLURM_LOCAL_LINK_ETC=1 (default) symlinks /etc/slurm/{slurm,gres,slurmdbd}.conf to the generated
#                        files so sbatch/squeue/sacct/submitit need no SLURM_CONF; 0 = export SLURM_CONF.
#      SLURM_LOCAL_TIMEOUT (default 60) seconds to wait for the nodes to become idle.
#      SLURM_LOCAL_KEEP_CONF=1  "up" keeps existing (hand-edited) conf files instead of regenerating them.
#      SLURM_LOCAL_PORT (default 6817: slurmctld; slurmd +1, slurmdbd +2), SLURM_LOCAL_DB_PORT (default 3307):
#                        a second cluster beside the first needs other ports, its own ROOT and LINK_ETC=0.
#      SLURM_LOCAL_NODES (default 1) 1: one node "localhost", partition debug. N >= 2: nodes n1..nN, each its
#                        own slurmd (`slurmd -N nI`, NodeHostname=localhost, NodeAddr=127.0.0.1, Port=7820+I),
#                        typed fake GPUs from SLURM_LOCAL_GRES_TYPES (default "a100 h100", cycled: n1 gets
#                        gpu:a100:G, n2 gpu:h100:G), plus node c1 (Port=7830) without GPUs. Partitions: debug
#                        (n1..nN, default, no limit), short (n1..nN, MaxTime=SLURM_LOCAL_SHORT_MIN minutes,
#                        default 20), quick (n1..nN, MaxTime 2 min), cpu (c1 only). Node names must resolve
#                        (c10d rendezvous endpoint), so "up" appends ONE line "127.0.0.1 n1 .. nN c1 # ftlaunch-local-slurm" to /etc/hosts
#                        (rewritten in place, only when missing or different); "purge" removes it.
set -euo pipefail

ROOT=${SLURM_LOCAL_ROOT:-/tmp/slurm-local}
CPUS=${SLURM_LOCAL_CPUS:-$(nproc)}
GPUS=${SLURM_LOCAL_GPUS:-4}
DBD=${SLURM_LOCAL_DBD:-0}
LINK_ETC=${SLURM_LOCAL_LINK_ETC:-1}
NODES_N=${SLURM_LOCAL_NODES:-1}
read -r -a GRES_TYPES <<<"${SLURM_LOCAL_GRES_TYPES:-a100 h100}"
SHORT_MIN=${SLURM_LOCAL_SHORT_MIN:-20}
PORT=${SLURM_LOCAL_PORT:-6817}        # slurmctld; slurmd (one node) +1, slurmdbd +2
DBPORT=${SLURM_LOCAL_DB_PORT:-3307}   # MariaDB
ETC=$ROOT/etc
CONF=$ETC/slurm.conf
export SLURM_CONF=$CONF
HOSTS_MARK="# ftlaunch-local-slurm"
if ((NODES_N > 1)); then
  NODES=(); for ((i = 1; i <= NODES_N; i++)); do NODES+=("n$i"); done; NODES+=(c1)
else
  NODES=(localhost)
fi
# per node: 80% of RAM, at least 64 GiB (config_overrides lets it exceed the host, like the fake GPUs): jobs
# ask --mem (memory is consumable, CR_Core_Memory) and a plan's 16 GiB must fit on a small CI machine too
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
((MEM_MB >= 65536)) || MEM_MB=65536
MEM_MB=${SLURM_LOCAL_MEM_MB:-$MEM_MB}
MYSQL=(mariadb --no-defaults -S "$ROOT/run/mysqld.sock" -u root)

log() { echo "[local-slurm $(date +%H:%M:%S)] $*" >&2; }
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_pidfile() { for _ in $(seq 100); do [[ -s $1 ]] && return; sleep 0.05; done; }

install_pkgs() {
  local pkgs=()
  for c in slurmctld slurmd sbatch munged; do command -v $c >/dev/null || pkgs=(slurmctld slurmd slurm-client munge); done
  if [[ $DBD == 1 ]]; then
    for c in slurmdbd mariadbd; do command -v $c >/dev/null || pkgs+=(slurmdbd mariadb-server); done
  fi
  if ((${#pkgs[@]})); then
    log "apt-get install ${pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  fi
}

gres_type() { echo "${GRES_TYPES[$((($1 - 1) % ${#GRES_TYPES[@]}))]}"; }

node_lines() {   # the NodeName / PartitionName lines of slurm.conf
  if ((NODES_N == 1)); then
    local g=""; ((GPUS > 0)) && g="Gres=gpu:$GPUS"
    echo "NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB $g State=UNKNOWN"
    echo "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP"
    return
  fi
  local i g
  for ((i = 1; i <= NODES_N; i++)); do
    g=""; ((GPUS > 0)) && g="Gres=gpu:$(gres_type $i):$GPUS"
    echo "NodeName=n$i NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((7820 + i)) CPUs=$CPUS RealMemory=$MEM_MB $g State=UNKNOWN"
  done
  echo "NodeName=c1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=7830 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN"
  echo "PartitionName=debug Nodes=n[1-$NODES_N] Default=YES MaxTime=INFINITE State=UP"
  echo "PartitionName=short Nodes=n[1-$NODES_N] MaxTime=$SHORT_MIN State=UP"
  echo "PartitionName=quick Nodes=n[1-$NODES_N] MaxTime=2 State=UP"
  echo "PartitionName=cpu Nodes=c1 MaxTime=1-00:00:00 State=UP"
}

etc_hosts() {   # etc_hosts add|remove: our one line in /etc/hosts, rewritten in place (it may be a bind mount)
  local rest want="127.0.0.1 ${NODES[*]} $HOSTS_MARK"
  if [[ $1 == add ]] && ((NODES_N > 1)); then
    grep -qxF -- "$want" /etc/hosts && return 0
    rest=$(grep -vF -- "$HOSTS_MARK" /etc/hosts || true)
    printf '%s\n%s\n' "$rest" "$want" >/etc/hosts
    log "/etc/hosts: $want"
  elif [[ $1 == remove ]] && grep -qF -- "$HOSTS_MARK" /etc/hosts; then
    rest=$(grep -vF -- "$HOSTS_MARK" /etc/hosts || true)
    printf '%s\n' "$rest" >/etc/hosts
  fi
}

write_conf() {
  mkdir -p "$ETC" "$ROOT"/{state,spool,log,run,fakegpu}
  local n; for n in "${NODES[@]}"; do mkdir -p "$ROOT/spool/$n"; done
  # Fake GPUs: char devices aliasing /dev/null (major 1, minor 3). gres.conf File= must be a char/block
  # device; then Slurm binds them and sets CUDA_VISIBLE_DEVICES. Plain files only log "is not a valid
  # character or block device" (jobs still get scheduled, but CUDA_VISIBLE_DEVICES stays unset).
  for ((i = 0; i < GPUS; i++)); do
    [[ -c $ROOT/fakegpu/nvidia$i ]] || { rm -f "$ROOT/fakegpu/nvidia$i"
      mknod "$ROOT/fakegpu/nvidia$i" c 1 3 || touch "$ROOT/fakegpu/nvidia$i"; }
  done
  local types="" t
  if ((NODES_N > 1 && GPUS > 0)); then
    for t in $(printf '%s\n' "${GRES_TYPES[@]}" | sort -u); do types+=",gres/gpu:$t"; done
  fi
  local acct="AccountingStorageType=accounting_storage/none"
  [[ $DBD == 1 ]] && acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((PORT + 2))
AccountingStorageTRES=gres/gpu$types"
  local gres="" port="SlurmdPort=$((PORT + 1))"
  ((GPUS > 0)) && gres="GresTypes=gpu"
  ((NODES_N > 1)) && port="# slurmd ports: Port= on each NodeName line"
  cat >"$CONF" <<EOF
# generated by local-slurm.sh
ClusterName=localci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job waits cred_expire seconds (default 120) before it is eligible to start again
AuthInfo=cred_expire=10
SlurmctldPort=$PORT
$port
StateSaveLocation=$ROOT/state
# %n: one spool / pid / log per node name, so that several slurmd share this host
SlurmdSpoolDir=$ROOT/spool/%n
SlurmctldPidFile=$ROOT/run/slurmctld.pid
SlurmdPidFile=$ROOT/run/slurmd-%n.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# lets CPUs= exceed the real core count (SLURM_LOCAL_CPUS=8 on a 2-core box); without it the node goes
# INVAL/DRAIN "Low socket*core*thread count, Low CPUs"
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
# memory is a consumable resource: a step over its --mem is then killed (OverMemoryKill below)
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
# refuse at submit time a job no partition can ever run (the default NO leaves it pending forever)
EnforcePartLimits=ALL
$gres
# Without slurmdbd, plain sacct fails ("Slurm accounting storage is disabled", rc 1) and
# AccountingStorageTRES=gres/gpu is fatal ("slurmdbd is required to run with TRES gres/gpu").
$acct
JobCompType=jobcomp/filetxt
JobCompLoc=$ROOT/log/jobcomp.txt
JobAcctGatherType=jobacct_gather/linux
# a step above its --mem is killed (state OUT_OF_MEMORY): no cgroups here, so the sampler enforces it
JobAcctGatherParams=OverMemoryKill
JobAcctGatherFrequency=task=1
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
Waittime=0
$(node_lines)
EOF
  if ((GPUS > 0)); then
    {
      echo AutoDetect=off
      if ((NODES_N > 1)); then
        for ((i = 1; i <= NODES_N; i++)); do
          echo "NodeName=n$i Name=gpu Type=$(gres_type $i) File=$ROOT/fakegpu/nvidia[0-$((GPUS - 1))]"
        done
      else
        echo "NodeName=localhost Name=gpu File=$ROOT/fakegpu/nvidia[0-$((GPUS - 1))]"
      fi
    } >"$ETC/gres.conf"
  else
    : >"$ETC/gres.conf"
  fi
  cat >"$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 2))
SlurmUser=root
LogFile=$ROOT/log/slurmdbd.log
PidFile=$ROOT/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DBPORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$ETC/slurmdbd.conf"   # slurmdbd insists on 0600, owned by SlurmUser
  if [[ $LINK_ETC == 1 ]]; then
    mkdir -p /etc/slurm
    for f in slurm.conf gres.conf slurmdbd.conf; do ln -sfn "$ETC/$f" "/etc/slurm/$f"; done
  fi
}

start_munge() {
  if [[ -S /run/munge/munge.socket.2 ]] && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /etc/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  [[ -s /etc/munge/munge.key ]] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged --force      # daemonizes, pid in /run/munge/munged.pid
  for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  log "munged did not come up"; exit 1
}

start_dbd() {
  [[ $DBD == 1 ]] || return 0
  if ! alive "$ROOT/run/mysqld.pid"; then
    if [[ ! -d $ROOT/mysql/mysql ]]; then
      log "initialising MariaDB datadir"
      mkdir -p "$ROOT/mysql"
      mariadb-install-db --no-defaults --user=root --datadir="$ROOT/mysql" \
        --auth-root-authentication-method=socket --skip-test-db >"$ROOT/log/mysql-install.log" 2>&1
    fi
    log "starting mariadbd on 127.0.0.1:$DBPORT"
    rm -f "$ROOT/run/mysqld.pid"
    setsid mariadbd --no-defaults --user=root --datadir="$ROOT/mysql" --socket="$ROOT/run/mysqld.sock" \
      --pid-file="$ROOT/run/mysqld.pid" --bind-address=127.0.0.1 --port=$DBPORT --skip-name-resolve \
      --innodb-buffer-pool-size=64M --log-error="$ROOT/log/mysqld.log" </dev/null >/dev/null 2>&1 &
    for _ in $(seq 300); do "${MYSQL[@]}" -e 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
    "${MYSQL[@]}" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  fi
  if ! alive "$ROOT/run/slurmdbd.pid"; then
    log "starting slurmdbd"
    rm -f "$ROOT/run/slurmdbd.pid"
    slurmdbd                                          # daemonizes; reads /etc/slurm/slurmdbd.conf
    wait_pidfile "$ROOT/run/slurmdbd.pid"
    for _ in $(seq 300); do timeout 5 sacctmgr -n list cluster >/dev/null 2>&1 && return; sleep 0.1; done
    log "slurmdbd not answering; see $ROOT/log/slurmdbd.log"; exit 1
  fi
}

start_slurm() {
  if ! alive "$ROOT/run/slurmctld.pid"; then
    log "starting slurmctld"
    rm -f "$ROOT/run/slurmctld.pid"
    slurmctld -f "$CONF"        # daemonizes; add -c to discard saved jobs
    wait_pidfile "$ROOT/run/slurmctld.pid"
  fi
  local n st ready
  for n in "${NODES[@]}"; do
    alive "$ROOT/run/slurmd-$n.pid" && continue
    log "starting slurmd $n"
    rm -f "$ROOT/run/slurmd-$n.pid"
    slurmd -f "$CONF" -N "$n"
    wait_pidfile "$ROOT/run/slurmd-$n.pid"
  done
  local deadline=$((SECONDS + ${SLURM_LOCAL_TIMEOUT:-60}))
  while ((SECONDS < deadline)); do
    alive "$ROOT/run/slurmctld.pid" || { log "slurmctld died:"; tail -5 "$ROOT/log/slurmctld.log" >&2; exit 1; }
    ready=0
    for n in "${NODES[@]}"; do
      alive "$ROOT/run/slurmd-$n.pid" || { log "slurmd $n died:"; tail -5 "$ROOT/log/slurmd-$n.log" >&2; exit 1; }
      st=$(timeout 5 sinfo -h -N -n "$n" -o %T 2>/dev/null | head -n 1 || true)
      case $st in
        idle|mixed|allocated) ready=$((ready + 1)) ;;
        down*|drain*) timeout 5 scontrol update NodeName="$n" State=RESUME 2>/dev/null || true ;;
      esac
    done
    ((ready == ${#NODES[@]})) && { log "nodes ${NODES[*]} are up"; return; }
    sleep 0.25
  done
  log "nodes did not become idle; see $ROOT/log/"; timeout 5 sinfo -N -l || true; exit 1
}

stop_pids() {   # stop_pids NAME:PIDFILE... : SIGTERM all at once, wait up to 15 s, then SIGKILL
  local pids=() item pid
  for item in "$@"; do
    alive "${item#*:}" || continue
    pid=$(cat "${item#*:}"); pids+=("$pid"); log "stopping ${item%%:*} (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
  done
  ((${#pids[@]})) || return 0
  for _ in $(seq 150); do
    local left=0; for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    ((left)) || return 0; sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && { log "pid $pid still alive after 15s, SIGKILL"; kill -KILL "$pid"; }; done
  return 0
}

down() {   # slurm daemons first (slurmctld saves state, flushes records to slurmdbd), then DB, then munge
  local f items=()
  for f in "$ROOT"/run/slurmd-*.pid "$ROOT"/run/slurmd.pid; do [[ -e $f ]] && items+=("slurmd:$f"); done
  stop_pids "${items[@]}" slurmctld:"$ROOT/run/slurmctld.pid"
  stop_pids slurmdbd:"$ROOT/run/slurmdbd.pid"
  stop_pids mariadbd:"$ROOT/run/mysqld.pid" munged:/run/munge/munged.pid
}

up() { install_pkgs; [[ ${SLURM_LOCAL_KEEP_CONF:-0} == 1 ]] || write_conf; etc_hosts add; start_munge; start_dbd; start_slurm; }

case ${1:-up} in
  up)      up ;;
  conf)    write_conf ;;
  down)    down ;;
  purge)   down; rm -rf "${ROOT:?}"/{state,spool,log,run,fakegpu,mysql}; etc_hosts remove ;;
  restart) down; up ;;
  status)  for d in slurmctld slurmdbd mysqld "${NODES[@]/#/slurmd-}"; do
             alive "$ROOT/run/$d.pid" && echo "$d pid $(cat "$ROOT/run/$d.pid")" || echo "$d down"; done
           alive /run/munge/munged.pid && echo "munged pid $(cat /run/munge/munged.pid)" || echo "munged down"
           timeout 5 sinfo -N -o '%N %T %c %m %G %P' 2>/dev/null || true ;;
  *) echo "usage: $0 [up|down|purge|restart|status|conf]" >&2; exit 2 ;;
esac
