#!/usr/bin/env bash
# Writes seed inputs for every target into fuzz/corpus/<target>/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")"

seed() { # seed <target> <name> <printf format> [args...]
    local dir="corpus/$1" name=$2 fmt=$3
    shift 3
    mkdir -p "$dir"
    # shellcheck disable=SC2059
    printf "$fmt" "$@" >"$dir/seed-$name"
}

x() { printf "%${2}s" '' | tr ' ' "$1"; }

seed transport_frame two '\003\000\000\000\005hello\000\000\000\000'
seed transport_frame max '\000\000\000\020\000%s' "$(x a 4096)"
seed transport_frame over '\007\000\000\020\001abc'
seed transport_frame truncated '\001\000\000\000\004ab'

seed transport_connect connect 'CONNECT node-2\n'
seed transport_connect longest 'CONNECT %s\nrest' "$(x n 64)"
seed transport_connect line-max '%s\n' "$(x a 127)"
seed transport_connect ok 'OK\nafter'
seed transport_connect err 'ERR unknown node\n'

seed transport_blob put '\001\001\005share\001\002\003'
seed transport_blob get '\001\002\011escrow-n2'
seed transport_blob list '\001\003\000'
seed transport_blob list-prefix '\001\003\007escrow-'
seed transport_blob delete '\001\004\001n'
seed transport_blob done '\001\000'
seed transport_blob data '\001\001sealed'
seed transport_blob not-found '\001\002'
seed transport_blob names '\001\003\000\002\001a\003b.c'
seed transport_blob error '\001\004\003no space left'

seed enclave_messages escrow-put '\001\001%s' "$(x k 32)"
seed enclave_messages escrow-stored '\001\002'
seed enclave_messages release-request '\001\003\204\104\241\001\070\042'
seed enclave_messages released '\001\004%s%s' "$(x e 32)" "$(x c 48)"
seed enclave_messages not-held '\001\005'
seed enclave_messages unavailable '\001\006waiting for its own key'
seed enclave_messages refused '\001\007measurements\n"x"'
seed enclave_messages ping '\001\010'
seed enclave_messages pong '\001\011'
seed enclave_messages submit '\001\001{"manifest":"","signatures":[]}'
seed enclave_messages answer-ok '\001\000{"node_id":"node-1"}'
seed enclave_messages answer-err '\001\001not enough signatures'

seed enclave_channel hello '\000\001\006node-2\204\104\241\001\070\042\240'
seed enclave_channel hello-self '\000\001\006node-1\204'
seed enclave_channel hello-unknown '\000\001\006node-9\204'
seed enclave_channel hello-bad-id '\000\001\003a/b\204'
seed enclave_channel verdict-accept '\001\001\000'
seed enclave_channel verdict-refuse '\001\001\001measurements\tdiffer'
seed enclave_channel verdict-long '\001\001\001%s' "$(x r 256)"

body=$(cat <<JSON
{"version":2,"threshold":1,"operators":[{"id":"alice","public_key":"$(x a 64)"},{"id":"bob","public_key":"$(x b 64)"}],"nodes":[{"id":"node-1","provider":"sim","address":"10.0.0.1:5000","measurements":[{"0":"$(x 0 96)","1":"$(x 1 96)","2":"$(x 2 96)","4":"$(x 5 96)"}]},{"id":"node-2","provider":"aws-nitro","address":"[::1]:5000","measurements":[{"0":"$(x 3 64)","1":"$(x 1 64)","2":"$(x 2 64)","4":"$(x 6 96)"},{"8":"$(x 4 128)","4":"$(x 6 96)"}]}]}
JSON
)
seed manifest_parse body '%s' "$body"
tagged=$(cat <<JSON
{"version":2,"threshold":1,"operators":[{"id":"alice","public_key":"$(x a 64)"}],"nodes":[{"id":"node-1","provider":"nitro","address":"10.0.0.1:5000","measurements":[{"nitro":{"0":"$(x 0 96)","1":"$(x 1 96)","2":"$(x 2 96)","4":"$(x 5 96)"}}]},{"id":"node-2","provider":"sim","address":"10.0.0.2:5000","measurements":[{"aws-nitro":{"8":"$(x 4 128)","4":"$(x 6 96)"}},{"0":"$(x 3 64)","1":"$(x 1 64)","2":"$(x 2 64)","4":"$(x 6 96)"}]}]}
JSON
)
seed manifest_parse body-tagged '%s' "$tagged"
seed manifest_parse envelope '{"manifest":"%s","signatures":[{"operator":"alice","signature":"%s"}]}' \
    "$(printf '%s' "$body" | base64 -w0)" "$(x f 128)"
seed manifest_parse envelope-unsigned '{"manifest":"%s","signatures":[]}' \
    "$(printf '%s' "$body" | base64 -w0)"
