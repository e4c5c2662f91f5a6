#!/bin/sh
# ccp: run Claude Code through ccproxy, starting the proxy first when it is not up.
#
#   ccp [claude arguments...]
#
# PORT and ANTHROPIC_API_KEY are found the way the proxy finds them: the environment,
# then ./.env, then ~/.claude/proxy.env. Claude Code gets ANTHROPIC_BASE_URL and
# ANTHROPIC_AUTH_TOKEN for the proxy, and not ANTHROPIC_API_KEY or the
# ANTHROPIC_DEFAULT_*_MODEL variables (it would act on those itself).

set -u

ccp_die() {  # STATUS MESSAGE
    printf 'ccp: %s\n' "$2" >&2
    exit "$1"
}

# ccp_unquote VALUE: a .env value without surrounding quotes, blanks or a " # comment".
ccp_unquote() {
    ccp_v=$1
    ccp_v=${ccp_v#"${ccp_v%%[![:space:]]*}"}
    case $ccp_v in
        \"*) ccp_v=${ccp_v#\"}; ccp_v=${ccp_v%%\"*} ;;
        \'*) ccp_v=${ccp_v#\'}; ccp_v=${ccp_v%%\'*} ;;
        *)
            ccp_v=${ccp_v%%[[:space:]]#*}
            ccp_v=${ccp_v%"${ccp_v##*[![:space:]]}"}
            ;;
    esac
    printf '%s\n' "$ccp_v"
}

# ccp_setting NAME: print NAME from the environment, ./.env or ~/.claude/proxy.env
# (the first that sets it); exit status 1 when none does.
ccp_setting() {
    eval "ccp_isset=\${$1+set}"
    if [ -n "$ccp_isset" ]; then
        eval "printf '%s\n' \"\$$1\""
        return 0
    fi
    for ccp_file in ./.env "${HOME:-}/.claude/proxy.env"; do
        [ -f "$ccp_file" ] || continue
        ccp_line=$(grep -E "^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=" "$ccp_file" 2>/dev/null \
            | tail -n 1 | tr -d '\r')
        [ -n "$ccp_line" ] || continue
        ccp_unquote "${ccp_line#*=}"
        return 0
    done
    return 1
}

# ccp_up PORT: whether a ccproxy answers on http://127.0.0.1:PORT/health.
ccp_up() {
    ccp_url="http://127.0.0.1:$1/health"
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --noproxy '*' --max-time 2 "$ccp_url" 2>/dev/null | grep -q '"ccproxy"'
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c '
import json, sys, urllib.request as r
try:
    body = r.build_opener(r.ProxyHandler({})).open(sys.argv[1], timeout=2).read()
    sys.exit(0 if json.loads(body).get("name") == "ccproxy" else 1)
except Exception:
    sys.exit(1)
' "$ccp_url" >/dev/null 2>&1
    else
        return 1  # cannot tell: `ccproxy start` checks for itself
    fi
}

command -v claude >/dev/null 2>&1 \
    || ccp_die 127 "claude (Claude Code) is not on PATH; install it with: npm install -g @anthropic-ai/claude-code"

port=$(ccp_setting PORT) || port=8082
case $port in
    '' | *[!0-9]*) ccp_die 2 "PORT: '$port' is not a port number" ;;
esac

if ! ccp_up "$port"; then
    ccproxy_bin=$(command -v ccproxy 2>/dev/null) || ccproxy_bin=
    if [ -z "$ccproxy_bin" ]; then
        # Installed beside ccproxy (a virtualenv's bin/) but that directory is not on PATH.
        ccp_sibling="$(dirname -- "$0")/ccproxy"
        if [ -f "$ccp_sibling" ] && [ -x "$ccp_sibling" ]; then
            ccproxy_bin=$ccp_sibling
        else
            ccp_die 127 "ccproxy is not on PATH; install it (pip install ccproxy) or activate its virtualenv"
        fi
    fi
    # Its messages go to stderr so that `ccp -p ... > out` captures only Claude's output.
    "$ccproxy_bin" start --port "$port" >&2 || ccp_die $? "ccproxy did not start; not running claude"
fi

token=$(ccp_setting ANTHROPIC_API_KEY) || token=
[ -n "$token" ] || token=ccproxy

ANTHROPIC_BASE_URL="http://127.0.0.1:$port"
ANTHROPIC_AUTH_TOKEN=$token
export ANTHROPIC_BASE_URL ANTHROPIC_AUTH_TOKEN

# Claude Code honours HTTP(S)_PROXY, and the proxy is on loopback: keep it off any HTTP
# proxy of the environment (a corporate proxy would refuse 127.0.0.1, or reach its own).
for ccp_name in NO_PROXY no_proxy; do
    eval "ccp_list=\${$ccp_name:-}"
    for ccp_host in 127.0.0.1 localhost; do
        case ",$ccp_list," in
            *",$ccp_host,"*) ;;
            *) ccp_list="${ccp_list:+$ccp_list,}$ccp_host" ;;
        esac
    done
    eval "$ccp_name=\$ccp_list"
    export "$ccp_name"
done
unset ANTHROPIC_API_KEY ANTHROPIC_DEFAULT_OPUS_MODEL ANTHROPIC_DEFAULT_SONNET_MODEL \
    ANTHROPIC_DEFAULT_HAIKU_MODEL
for ccp_name in $(env | sed -n 's/^\(ANTHROPIC_DEFAULT_[A-Za-z0-9_]*_MODEL\)=.*/\1/p'); do
    unset "$ccp_name"
done

exec claude "$@"
