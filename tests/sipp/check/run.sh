#!/usr/bin/env bash
# Validate tests/sipp/trunk.xml and tests/sipp/auth.xml with sipp UACs.
#   usage: tests/sipp/check/run.sh [--no-load]
# Needs: sipp (3.6.1, RTPSTREAM), python3.  Exits non-zero on any failure.
# Everything runs on 127.0.0.1; scratch files go to a temp dir (kept on failure).
set -u

HERE="$(cd "$(dirname "$0")" && pwd)"
SIPPDIR="$(dirname "$HERE")"
SIPP="${SIPP:-sipp}"
LOAD=1
[ "${1:-}" = "--no-load" ] && LOAD=0

WORK="$(mktemp -d /tmp/waihu-sipp-check.XXXXXX)"
cd "$WORK" || exit 2
python3 "$SIPPDIR/make_audio.py" "$WORK"

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT

# free_ports N: N UDP ports p such that p and p+2 are free (sipp binds
# -mp and -mp+2), all even, spaced by 4.
free_ports() {
    python3 - "$1" <<'EOF'
import random, socket, sys
n, out = int(sys.argv[1]), []
def free(p):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while len(out) < n:
    p = random.randrange(20000, 60000, 4)
    if all(free(p + k) for k in range(4)) and p not in out:
        out.append(p)
print(" ".join(map(str, out)))
EOF
}

read -r TRUNK_P TRUNK_MP AUTH_P AUTH_MP UAC_P UAC_MP RTP1 RTP2 <<<"$(free_ports 8)"

FAIL=0
ok()   { echo "PASS  $*"; }
bad()  { echo "FAIL  $*"; FAIL=1; }

# Start a UAS in the background; $1=scenario $2=sip port $3=media port $4=-d ms
start_uas() {
    "$SIPP" -sf "$1" -i 127.0.0.1 -p "$2" -mi 127.0.0.1 -mp "$3" -d "$4" \
        -aa -nostdin -trace_err -trace_logs -trace_msg \
        >"$(basename "$1" .xml).out" 2>&1 &
    PIDS+=($!)
    # wait until the SIP port is taken
    for _ in $(seq 50); do
        python3 -c "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('127.0.0.1',$2))" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "UAS $1 did not start"; cat "$(basename "$1" .xml).out"; exit 2
}

# uac NAME SCENARIO TARGET_PORT SERVICE EXTRA... ; sets RC and LOG (the <log> lines)
uac() {
    local name=$1 sf=$2 port=$3 svc=$4; shift 4
    timeout 60 "$SIPP" "127.0.0.1:$port" -sf "$sf" -s "$svc" -key rtpport "$RTP1" \
        -i 127.0.0.1 -p "$UAC_P" -mi 127.0.0.1 -mp "$UAC_MP" -m 1 -nostdin \
        -trace_err -trace_logs -log_file "$name.log" -trace_msg -message_file "$name.msg" \
        -timeout 30s -timeout_error "$@" >"$name.out" 2>&1
    RC=$?
    END_TS=$(date +%s.%N)
    LOG="$(cat "$name.log" 2>/dev/null)"
}

# rtp_start SECONDS : background listener on RTP1, summary in rtp.json
rtp_start() {
    rm -f rtp.json rtp.err
    python3 "$HERE/rtp_listen.py" "$RTP1" "$1" >rtp.json 2>rtp.err &
    RTP_PID=$!
    for _ in $(seq 50); do grep -q listening rtp.err 2>/dev/null && return; sleep 0.05; done
}

# rtp_check LABEL PT MIN_PACKETS FILE [STREAMS]: wait for the listener, then
# check PT, 160-byte payloads, 20 ms spacing, first payload == file start,
# and that nothing arrived after the UAC ended the call (END_TS).
rtp_check() {
    wait "$RTP_PID"
    python3 - "$1" "$2" "$3" "$4" "${5:-1}" "$END_TS" rtp.json <<'EOF'
import json, sys
label, pt, minp, wav, streams, end_ts, path = sys.argv[1:]
r = json.load(open(path))
errs = []
if r["packets"] < int(minp): errs.append("only %d packets" % r["packets"])
if set(r["pt"]) != {pt}: errs.append("PTs %s" % r["pt"])
if set(r["payload_sizes"]) != {"160"}: errs.append("sizes %s" % r["payload_sizes"])
if r["streams"] != int(streams): errs.append("%d streams" % r["streams"])
if r["gap_median_ms"] is None or not 18 <= r["gap_median_ms"] <= 22: errs.append("median gap %s" % r["gap_median_ms"])
head = open(wav, "rb").read(160).hex()
if r["first_payloads"] != [head]: errs.append("first payload != file start")
if r["last"] and r["last"] > float(end_ts): errs.append("RTP after call end (%.3fs)" % (r["last"] - float(end_ts)))
print("%s  rtp %s: %d pkts PT%s 160B median %sms p95 %sms streams=%d from %s" % (
    "FAIL" if errs else "PASS", label, r["packets"], pt, r["gap_median_ms"], r["gap_p95_ms"],
    r["streams"], ",".join(r["sources"])) + ("  <- " + "; ".join(errs) if errs else ""))
sys.exit(1 if errs else 0)
EOF
    [ $? -eq 0 ] || FAIL=1
}

expect() { # LABEL PATTERN...: RC==0 and every pattern in LOG
    local label=$1; shift
    [ "$RC" -eq 0 ] || { bad "$label: sipp rc=$RC"; return; }
    for p in "$@"; do
        grep -qE -- "$p" <<<"$LOG" || { bad "$label: log lacks /$p/: $(tr '\n' '|' <<<"$LOG")"; return; }
    done
    ok "$label"
}

D=2000   # trunk -d: answered calls (0/9/auth) last 2 s, then the trunk hangs up
start_uas "$SIPPDIR/trunk.xml" "$TRUNK_P" "$TRUNK_MP" "$D"
start_uas "$SIPPDIR/auth.xml" "$AUTH_P" "$AUTH_MP" "$D"
echo "trunk 127.0.0.1:$TRUNK_P media $TRUNK_MP | auth 127.0.0.1:$AUTH_P media $AUTH_MP | work $WORK"

# ---- failure branches --------------------------------------------------------
uac b1 "$HERE/uac.xml" "$TRUNK_P" 13800000001
expect "1 busy+Q.850"  '^PROV 180' '^FINAL 486 reason=Q\.850;cause=17;text="USER_BUSY"$'
uac b2 "$HERE/uac.xml" "$TRUNK_P" 13800000002
expect "2 404"         '^FINAL 404'
grep -q '^PROV' <<<"$LOG" && bad "2: unexpected 18x"
uac b3 "$HERE/uac.xml" "$TRUNK_P" 13800000003
expect "3 480"         '^PROV 180' '^FINAL 480'
uac b4 "$HERE/uac.xml" "$TRUNK_P" 13800000004
expect "4 503"         '^FINAL 503'
grep -q '^PROV' <<<"$LOG" && bad "4: unexpected 18x"
uac b5 "$HERE/uac.xml" "$TRUNK_P" 13800000005
expect "5 603"         '^PROV 180' '^FINAL 603'
uac b6 "$HERE/uac_cancel.xml" "$TRUNK_P" 13800000006
expect "6 cancel"      '^PROV 180' '^CANCEL 200 CANCEL' '^FINAL 487 1 INVITE'
uac b8 "$HERE/uac.xml" "$TRUNK_P" 13800000008
expect "8 183+486"     '^PROV 183 sdp=m=audio [0-9]+ RTP/AVP' '^FINAL 486 reason=$'

# ---- answered branches with RTP -----------------------------------------------
rtp_start 6
uac b0 "$HERE/uac.xml" "$TRUNK_P" 13800000000
expect "0 answer, trunk BYE" '^PROV 180' "^FINAL 200 .* c=127\.0\.0\.1 port=$TRUNK_MP fmts=0 8 totag=;tag= contact=sip:trunk@" '^GOT BYE'
rtp_check "0" 0 90 pcmu.wav

rtp_start 6
uac b9 "$HERE/uac.xml" "$TRUNK_P" 13800000009
expect "9 answer PCMA, trunk BYE" "^FINAL 200 .* port=$TRUNK_MP fmts=8 0 " '^GOT BYE'
rtp_check "9" 8 90 pcma.wav

rtp_start 6
uac b7 "$HERE/uac_bye.xml" "$TRUNK_P" 13800000007 -d 3000
expect "7 answer, caller BYE after 3 s (> trunk -d)" '^FINAL 200' '^BYE 200'
rtp_check "7" 0 140 pcmu.wav

rtp_start 4
uac b0early "$HERE/uac_bye.xml" "$TRUNK_P" 13800000010 -d 800
expect "0 caller hangs up first (global BYE)" '^FINAL 200' '^BYE 200'
rtp_check "0-early" 0 35 pcmu.wav

rtp_start 5
uac bnodigit "$HERE/uac.xml" "$TRUNK_P" trunk
expect "no digit in R-URI user (sip:trunk@) -> treated as 0" '^FINAL 200 .* fmts=0 8 ' '^GOT BYE'
rtp_check "no-digit" 0 90 pcmu.wav

# ---- digest auth ----------------------------------------------------------------
rtp_start 6
uac auth_ok "$HERE/uac_auth.xml" "$AUTH_P" 13800000000 -au waihu -ap s3cret
expect "auth valid" '^CHALLENGE Digest realm="waihu.test", nonce="[^"]+", algorithm=MD5, qop="auth"' '^FINAL 200' '^GOT BYE'
rtp_check "auth" 0 90 pcmu.wav
grep -q 'Authorization: Digest .*qop=auth' auth_ok.msg || bad "auth: UAC did not answer with qop=auth"

uac auth_bad "$HERE/uac_auth.xml" "$AUTH_P" 13800000000 -au waihu -ap wrong
expect "auth wrong password -> 403" '^FINAL 403'
uac auth_user "$HERE/uac_auth.xml" "$AUTH_P" 13800000000 -au nobody -ap s3cret
expect "auth wrong user -> 403" '^FINAL 403'

# ---- verifyauth vs. an RFC 2617 header written like rsipstack's (", " separated,
# R-URI as uri, nonce we never issued: verifyauth does not check the nonce) -----
static_auth() { # LABEL PASSWORD QOP(auth|none)
    local authz
    authz=$(python3 - "$2" "$3" "$AUTH_P" <<'EOF2'
import hashlib, sys
pw, qop, port = sys.argv[1:]
h = lambda s: hashlib.md5(s.encode()).hexdigest()
uri, nonce, cnonce, nc = "sip:13800000000@127.0.0.1:%s" % port, "not-the-issued-nonce", "0a4f113b", "00000001"
ha1, ha2 = h("waihu:waihu.test:" + pw), h("INVITE:" + uri)
if qop == "auth":
    resp = h(":".join([ha1, nonce, nc, cnonce, "auth", ha2]))
    extra = ', qop=auth, nc=%s, cnonce="%s"' % (nc, cnonce)
else:
    resp, extra = h(":".join([ha1, nonce, ha2])), ""
print('Authorization: Digest username="waihu", realm="waihu.test", nonce="%s", uri="%s", '
      'response="%s", algorithm=MD5%s' % (nonce, uri, resp, extra))
EOF2
)
    sed 's/\[authentication\]/[authz]/' "$HERE/uac_auth.xml" >uac_auth_static.xml
    uac "$1" uac_auth_static.xml "$AUTH_P" 13800000000 -key authz "$authz"
}
static_auth auth_static_qop s3cret auth
expect "auth rsipstack-style header, qop=auth (foreign nonce accepted)" '^FINAL 200' '^GOT BYE'
static_auth auth_static_noqop s3cret none
expect "auth rsipstack-style header, no qop" '^FINAL 200' '^GOT BYE'
static_auth auth_static_bad s3creT auth
expect "auth rsipstack-style header, wrong password -> 403" '^FINAL 403'

# ---- load: 300 calls at once ------------------------------------------------------
# load NAME N "DIGITS": N calls at 1000 calls/s (all started within 0.3 s), the
# i-th call dials 1380000<i><digit>, digits cycling through DIGITS.
load() {
    local name=$1 n=$2 digits=$3 nd
    nd=$(wc -w <<<"$digits")
    { echo SEQUENTIAL; for i in $(seq 0 $((n - 1))); do
        printf '1380000%04d%s;\n' "$i" "$(cut -d' ' -f$((i % nd + 1)) <<<"$digits")"; done; } >"$name.csv"
    sed 's/\[service\]/[field0]/g' "$HERE/uac.xml" >"$name.xml"
    local answered
    answered=$(grep -cE '[09];$' "$name.csv")
    rtp_start 10
    uac "$name" "$name.xml" "$TRUNK_P" unused -inf "$name.csv" -m "$n" -l "$n" -r 1000 -rp 1000
    local finals
    finals=$(grep '^FINAL' "$name.log" | cut -d' ' -f2 | sort | uniq -c | tr -s ' \n' ' ')
    if [ "$RC" -eq 0 ]; then ok "load $name: $n calls ($digits) all succeeded; finals:$finals"
    else bad "load $name: sipp rc=$RC; finals:$finals"; tail -5 "$name.out"; fi
    wait "$RTP_PID"
    python3 - "$answered" rtp.json "$name" <<'EOF2' || FAIL=1
import json, sys
n, r, name = int(sys.argv[1]), json.load(open(sys.argv[2])), sys.argv[3]
good = r["streams"] == n and set(r["pt"]) <= {"0", "8"} and set(r["payload_sizes"]) == {"160"} \
    and r["packets"] >= n * 90
print("%s  load %s rtp: %d streams (want %d), %d pkts (want >= %d), PTs %s, median gap %sms, p95 %sms" % (
    "PASS" if good else "FAIL", name, r["streams"], n, r["packets"], n * 90, r["pt"],
    r["gap_median_ms"], r["gap_p95_ms"]))
sys.exit(0 if good else 1)
EOF2
}

if [ "$LOAD" = 1 ]; then
    load load_answer 300 "0 9"                # 300 answered calls up at the same time
    load load_mixed 300 "0 1 2 3 4 5 8 9"     # every non-interactive branch under load
fi

# ---- the UASs must have logged no unexpected messages ----------------------------
for f in trunk_*_errors.log auth_*_errors.log; do
    [ -e "$f" ] || continue
    if grep -qiE 'unexpected|aborting|failed' "$f"; then bad "errors in $f:"; head -20 "$f"; fi
done

if [ "$FAIL" = 0 ]; then echo "ALL PASSED"; rm -rf "$WORK"; else echo "FAILURES (work dir kept: $WORK)"; fi
exit "$FAIL"
