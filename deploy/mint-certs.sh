#!/usr/bin/env bash
# mint-certs.sh: a throwaway certificate authority and certificates for cohort's TLS (tests, the
# demo, a first try on a cluster). EC P-256 keys, minted with the openssl command line.
#
#   deploy/mint-certs.sh OUT_DIR [--agents N] [--days D]
#       ca.crt/.key            the cluster CA (signs the coordinator and every client)
#       coordinator.crt/.key   server: DNS:localhost, DNS:cohort-coordinator, IP:127.0.0.1
#       operator.crt/.key      client, CN operator, URI spiffe://cohort/operator
#       viewer.crt/.key        client, CN viewer,   URI spiffe://cohort/viewer
#       agent-I.crt/.key       client, CN agent-I,  URI spiffe://cohort/agent/agent-I (I < N, N=4);
#                              also DNS:agent-I and serverAuth, for the agent's HTTPS metrics
#       other-ca.crt/.key      a second CA nobody trusts, and stranger.crt/.key signed by it
#       expired.crt/.key       CN agent-0 signed by ca, valid only in 2020
#       operator.token, viewer.token, agent-0.token   random bearer tokens
#   deploy/mint-certs.sh OUT_DIR --client NAME [--uri URI] [--server-auth] [--days D]
#       one more client certificate NAME.crt/.key from OUT_DIR's CA (URI default:
#       spiffe://cohort/NAME); --server-auth: serverAuth too (an agent's HTTPS metrics)
#   deploy/mint-certs.sh OUT_DIR --server NAME --dns DNS[,DNS...] [--days D]
#       one more server certificate NAME.crt/.key for those DNS names only
#   deploy/mint-certs.sh OUT_DIR --rotate-server [--days D]
#       a new coordinator key and certificate from the same CA, each moved into place with one
#       rename (a reader sees the old file or the new one, never half of one)
#
# Private keys and tokens are written 0600. Not a production CA: use cert-manager or your own.
set -euo pipefail

usage() {
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
out="$1"
shift
agents=4 days=365 client="" uri="" rotate=0 server_auth=0 server="" dns=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --agents) agents="${2:?--agents needs a number}"; shift 2 ;;
    --days) days="${2:?--days needs a number}"; shift 2 ;;
    --client) client="${2:?--client needs a name}"; shift 2 ;;
    --uri) uri="${2:?--uri needs a URI}"; shift 2 ;;
    --server-auth) server_auth=1; shift ;;
    --server) server="${2:?--server needs a name}"; shift 2 ;;
    --dns) dns="${2:?--dns needs DNS names}"; shift 2 ;;
    --rotate-server) rotate=1; shift ;;
    -h|--help) usage ;;
    *) echo "mint-certs.sh: unknown argument $1" >&2; usage ;;
  esac
done
[[ "$agents" =~ ^[0-9]+$ ]] || { echo "mint-certs.sh: --agents must be a number" >&2; exit 2; }
[[ "$days" =~ ^[1-9][0-9]*$ ]] || { echo "mint-certs.sh: --days must be a positive number" >&2; exit 2; }
command -v openssl >/dev/null || { echo "mint-certs.sh: openssl is not installed" >&2; exit 1; }

mkdir -p "$out"
umask 077
work="$(mktemp -d "$out/.mint.XXXXXX")"
trap 'rm -rf "$work"' EXIT

new_key() {  # new_key PATH
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
  chmod 600 "$1"
}

new_ca() {  # new_ca NAME CN
  new_key "$work/$1.key"
  openssl req -x509 -new -key "$work/$1.key" -subj "/O=cohort/CN=$2" -days "$days" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$work/$1.crt"
  mv "$work/$1.key" "$out/$1.key"
  chmod 644 "$work/$1.crt"
  mv "$work/$1.crt" "$out/$1.crt"
}

# sign NAME CN SAN EKU [CA]: NAME.key and NAME.crt, signed by CA (default ca).
sign() {
  local name="$1" cn="$2" san="$3" eku="$4" ca="${5:-ca}"
  new_key "$work/$name.key"
  openssl req -new -key "$work/$name.key" -subj "/O=cohort/CN=$cn" -out "$work/$name.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n%s\n%s\n' \
    "extendedKeyUsage=$eku" "subjectAltName=$san" >"$work/$name.ext"
  openssl x509 -req -in "$work/$name.csr" -CA "$out/$ca.crt" -CAkey "$out/$ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 -extfile "$work/$name.ext" \
    -out "$work/$name.crt" 2>/dev/null
  chmod 644 "$work/$name.crt"
  # The key first, then the certificate: each file changes with one rename.
  mv "$work/$name.key" "$out/$name.key"
  mv "$work/$name.crt" "$out/$name.crt"
}

client_cert() {  # client_cert NAME [URI] [EKU]
  sign "$1" "$1" "URI:${2:-spiffe://cohort/$1}" "${3:-clientAuth}"
}

server_cert() {
  sign coordinator cohort-coordinator \
    "DNS:localhost,DNS:cohort-coordinator,IP:127.0.0.1" serverAuth
}

token() {  # token NAME
  openssl rand -hex 32 >"$work/$1.token"
  chmod 600 "$work/$1.token"
  mv "$work/$1.token" "$out/$1.token"
}

need_ca() {
  [[ -f "$out/ca.crt" && -f "$out/ca.key" ]] ||
    { echo "mint-certs.sh: $out has no ca.crt/ca.key; run mint-certs.sh $out first" >&2; exit 1; }
}

if [[ -n "$client" ]]; then
  need_ca
  if [[ "$server_auth" == 1 ]]; then
    client_cert "$client" "$uri" clientAuth,serverAuth
  else
    client_cert "$client" "$uri"
  fi
  exit 0
fi
if [[ -n "$server" ]]; then
  [[ -n "$dns" ]] || { echo "mint-certs.sh: --server needs --dns" >&2; exit 2; }
  need_ca
  sign "$server" "${dns%%,*}" "DNS:${dns//,/,DNS:}" serverAuth
  exit 0
fi
if [[ "$rotate" == 1 ]]; then
  need_ca
  server_cert
  exit 0
fi

new_ca ca "cohort test CA"
server_cert
client_cert operator
client_cert viewer
for ((i = 0; i < agents; i++)); do
  # serverAuth and a DNS name too: an agent serves its HTTPS metrics with this certificate.
  sign "agent-$i" "agent-$i" "URI:spiffe://cohort/agent/agent-$i,DNS:agent-$i" \
    clientAuth,serverAuth
done
new_ca other-ca "cohort untrusted CA"
sign stranger stranger "URI:spiffe://cohort/operator" clientAuth other-ca

# expired: valid only in 2020. `openssl x509 -days` cannot go back in time; `openssl ca` takes
# explicit dates.
new_key "$work/expired.key"
openssl req -new -key "$work/expired.key" -subj "/O=cohort/CN=agent-0" -out "$work/expired.csr"
touch "$work/index.txt"
cat >"$work/ca.cnf" <<EOF
[ca]
default_ca = mint
[mint]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
organizationName = optional
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = URI:spiffe://cohort/agent/agent-0
EOF
openssl rand -hex 16 >"$work/serial"
openssl ca -batch -notext -config "$work/ca.cnf" -cert "$out/ca.crt" -keyfile "$out/ca.key" \
  -startdate 20200101000000Z -enddate 20200102000000Z -extensions ext \
  -in "$work/expired.csr" -out "$work/expired.crt" 2>/dev/null
chmod 644 "$work/expired.crt"
mv "$work/expired.key" "$out/expired.key"
mv "$work/expired.crt" "$out/expired.crt"

token operator
token viewer
token agent-0
