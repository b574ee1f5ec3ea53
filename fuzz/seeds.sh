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

# Confidential Space tokens and bundles: Google's real tokens when their folder is beside
# the checkout, then shapes the parser must refuse or carry through to the verifier.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
jws() { # jws <header JSON> <claims JSON> <signature, base64url>
    printf '%s.%s.%s' "$(printf '%s' "$1" | b64url)" "$(printf '%s' "$2" | b64url)" "$3"
}
gcp=../../shared/fixtures/gcp-cs
if [ -d "$gcp/valid" ]; then
    mkdir -p corpus/attestation_gcp_token
    for f in "$gcp"/valid/*.jwt "$gcp"/invalid/*.jwt; do
        cat "$f" >"corpus/attestation_gcp_token/seed-$(basename "$f" .jwt)"
    done
    # The real token in a bundle: its eat_nonce binds no such values.
    seed attestation_gcp_token bundle-real '{"v":1,"token":"%s","nonce":"00ff"}' \
        "$(cat "$gcp"/valid/*.jwt)"
fi

# Bundles and a token from the simulated attester, when a simulator build of `enclave` is
# at hand (ENCLAVE, or the workspace's debug or release build).
enclave=${ENCLAVE:-}
for candidate in ../target/debug/enclave ../target/release/enclave; do
    if [ -z "$enclave" ] && [ -x "$candidate" ]; then enclave=$candidate; fi
done
if [ -n "$enclave" ]; then
    out=corpus/attestation_gcp_token
    ca=$(mktemp -d)
    mkdir -p "$out"
    "$enclave" --sim attest --provider gcp-cs --sim-gcp-ca "$ca/ca" --out "$out/seed-sim-bundle" \
        --nonce "$(x 5 64)" --public-key "04$(x a 128)" --user-data "$(x 4 64)"
    "$enclave" --sim attest --provider gcp-cs --sim-gcp-ca "$ca/ca" --out "$out/seed-sim-bundle-bare"
    sed 's/.*"token":"\([^"]*\)".*/\1/' "$out/seed-sim-bundle" >"$out/seed-sim-token"
    rm -rf "$ca"
fi

claims='{"iss":"https://confidentialcomputing.googleapis.com","aud":"tee-custody","iat":1750688551,"nbf":1750688551,"exp":1750692151,"eat_nonce":["a nonce between 10 and 74 characters","second"],"secboot":true,"hwmodel":"GCP_INTEL_TDX","swname":"CONFIDENTIAL_SPACE","dbgstat":"disabled-since-boot","support_attributes":["LATEST","STABLE","USABLE"],"submods":{"container":{"image_digest":"sha256:313b8a83d3c8bfc9abcffee4f538424473e2705383a7e46f16d159faf0e5ef34"},"gce":{"zone":"sim-zone-a","project_id":"sim-project","instance_id":"42","instance_name":"node-1"}}}'
sig=$(x A 342)
seed attestation_gcp_token shape '%s' "$(jws '{"alg":"RS256","typ":"JWT","x5c":["MAA=","MAA="]}' "$claims" "$sig")"
seed attestation_gcp_token alg-none '%s' "$(jws '{"alg":"none","typ":"JWT"}' "$claims" '')"
seed attestation_gcp_token hs256 '%s' "$(jws '{"alg":"HS256","x5c":["MAA="]}' "$claims" "$sig")"
seed attestation_gcp_token jku '%s' "$(jws '{"alg":"RS256","jku":"https://x","x5c":["MAA="]}' "$claims" "$sig")"
seed attestation_gcp_token bundle '{"v":1,"token":"%s","nonce":"00ff","public_key":"04aa","user_data":"42"}' \
    "$(jws '{"alg":"RS256","x5c":["MAA="]}' "$claims" "$sig")"
seed attestation_gcp_token bundle-unknown '{"v":1,"token":"eyJ.a.b","extra":1}'
seed attestation_gcp_token bundle-v2 '{"v":2,"token":"eyJ.a.b"}'

# Hex seeds: bytes written from hex digits (no tool beyond bash's printf).
seed_hex() { # seed_hex <target> <name> <hex>
    local dir="corpus/$1" hex=$3
    mkdir -p "$dir"
    # shellcheck disable=SC2059
    printf "$(printf '%s' "$hex" | sed 's/../\\x&/g')" >"$dir/seed-$2"
}

# An unsigned legacy (EIP-155) and EIP-1559 transfer, an ERC-20 transfer, a signed legacy one.
seed_hex chains_eth_tx legacy \
    ec078504a817c80082520894abababababababababababababababababababab880de0b6b3a764000080018080
seed_hex chains_eth_tx eip1559 \
    02f00103843b9aca008506fc23ac0082ea6094abababababababababababababababababababab880de0b6b3a764000080c0
seed_hex chains_eth_tx erc20-transfer \
    02f86d0103843b9aca008506fc23ac0082ea60947c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c80b844a9059cbb000000000000000000000000424242424242424242424242424242424242424200000000000000000000000000000000000000000000000000000000000f4240c0
seed_hex chains_eth_tx signed-legacy \
    f86c078504a817c80082520894abababababababababababababababababababab880de0b6b3a76400008025a0c027984ca57074c2fcebe53dfaf66c656908f47ace9ed3f4de4654aa7d7f1226a05fe31c531f1a640ee6f86a293b54288126b8ab25d861ce059fccc4e0ae667b89
# A PSBT spending two P2WPKH inputs to two outputs (raw: the target base64-encodes it), and
# the same PSBT finalized.
seed_hex chains_btc_psbt two-by-two "$(printf %s \
    70736274ff01009a02000000020101010101010101010101010101010101010101010101010101010101010101000000 \
    0000fdffffff02020202020202020202020202020202020202020202020202020202020202020100000000fdffffff02 \
    c0d4010000000000160014670caa79e51d78ed0c583b89ff39d9c49b7199e7c05701000000000016001479b000887626 \
    b294a914501a4cd226b58b235983000000000001011ff04902000000000016001479b000887626b294a914501a4cd226 \
    b58b2359830001011f60ea00000000000016001479b000887626b294a914501a4cd226b58b235983000000 \
    )"
seed_hex chains_btc_psbt two-by-two-finalized "$(printf %s \
    70736274ff01009a02000000020101010101010101010101010101010101010101010101010101010101010101000000 \
    0000fdffffff02020202020202020202020202020202020202020202020202020202020202020100000000fdffffff02 \
    c0d4010000000000160014670caa79e51d78ed0c583b89ff39d9c49b7199e7c05701000000000016001479b000887626 \
    b294a914501a4cd226b58b235983000000000001011ff04902000000000016001479b000887626b294a914501a4cd226 \
    b58b23598301086b0247304402205853b2ac72972da2550038741d98498bf58fa8d817e376ec64ef8bc676bcf1100220 \
    1d54ee93f54ce7928fa07a57bdf0cda745ba0c9e10b1344ed304232b4811f7400121031b84c5567b126440995d3ed5aa \
    ba0565d71e1834604819ff9c17f5e9d5dd078f0001011f60ea00000000000016001479b000887626b294a914501a4cd2 \
    26b58b23598301086b024730440220136a82119058524ce893a580051df1cd0d71fc3ce303c4e2cd97b78b2e592fa802 \
    203ee321434a0512220867548e9a24e1c0dbddf72e45de82a76cf25979d7c5e3e20121031b84c5567b126440995d3ed5 \
    aaba0565d71e1834604819ff9c17f5e9d5dd078f000000 \
    )"
