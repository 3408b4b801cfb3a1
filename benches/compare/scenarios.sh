# shellcheck shell=bash disable=SC2016,SC2034  # nginx variables in single quotes; the SC_ variables are read by compare.sh
# The scenarios of benches/compare.sh, sourced by it. Each `scenario_NAME DIR` (a `-` in the
# scenario's name is a `_` in the function's) writes the scenario's part of every proxy's
# configuration into DIR:
#
#   nginx.http        http-level directives (maps, split_clients)
#   nginx.locations   the server's locations
#   haproxy.rules     frontend rules (ACLs, use_backend)
#   haproxy.backends  extra backends
#   ficus.routes      [[routes]] entries
#
# and sets what the load generator sends and what the check expects:
#
#   SC_TITLE          one line for the table
#   SC_PATH           the request path
#   SC_PATH_BARE      the request path of the ficus-bare target (plugins only)
#   SC_HEADERS        "name: value|name: value" sent with every request
#   SC_RANDOM_HEADER  a header given a random user id per request ("" for none)
#   SC_DIRECT_PORT    the upstream port the "direct" target hits
#   SC_EXPECT         the side (x-upstream) that must answer: a, b, or split (both)
#   SC_SKIP           targets that cannot do the scenario (the bare Pingora proxy only passes through)
#   SC_SHADOW         where the scenario mirrors requests to: "" (nowhere), "fast" (the shadow nginx),
#                     "slow" (the server that answers after SHADOW_DELAY) or "down" (a closed port)
#   SC_REFUSED        the status a request without SC_HEADERS must get ("" when it is not refused):
#                     the check then proves the plugins do refuse
#
# The upstream side "a" is the legacy app (every proxy's default); "b" is the new service.

SCENARIOS_ALL="passthrough routes1000 split shadow shadow-slow shadow-down plugins"

# (1) Plain pass-through: one catch-all route. ficus's table has no routes, only `default`.
scenario_passthrough() {
    local dir=$1
    SC_TITLE="pass-through: GET / to the default upstream, no routes"
    SC_PATH="/"
    SC_HEADERS=""
    SC_RANDOM_HEADER=""
    SC_DIRECT_PORT=$UP_A
    SC_EXPECT="a"
    SC_SKIP=""
    SC_SHADOW=""
    SC_REFUSED=""
    : >"$dir/nginx.http"
    printf '        location / {\n            proxy_pass http://legacy;\n        }\n' >"$dir/nginx.locations"
    : >"$dir/haproxy.rules"
    : >"$dir/haproxy.backends"
    : >"$dir/ficus.routes"
}

# (2) A 1,000-route table; the request is matched by the last route, on a path template, the
# method, a client-version range and a header. The other routes mix the forms real tables use
# (segment prefixes, templates, exact paths; with methods, versions and headers), like the
# matcher's criterion bench.
#
# nginx and haproxy get the closest equivalent: 1,000 regex locations (nginx tries them in file
# order) or ACL rules (haproxy evaluates them in order) on path + method + header. Neither can
# express a semver range, so their version condition is left out: they do less work than ficus.
# nginx's locations also do not fall through: a location whose method or header condition fails
# sends the request to the default upstream instead of trying later locations.
ROUTES=1000

# Prints the kind of route i: the last route is the one the request hits.
route_kind() {
    local i=$1
    if ((i == ROUTES - 1)); then echo 1; else echo $((i % 4)); fi
}

scenario_routes1000() {
    local dir=$1 i kind last=$((ROUTES - 1))
    SC_TITLE="1,000 routes: GET /svc$last/users/42/orders, matched by the last route (template + method + version + header)"
    SC_PATH="/svc$last/users/42/orders"
    SC_HEADERS="x-client-version: 2.5.0|x-beta: 1"
    SC_RANDOM_HEADER=""
    SC_DIRECT_PORT=$UP_B
    SC_EXPECT="b"
    SC_SKIP="pingora"
    SC_SHADOW=""
    SC_REFUSED=""

    # nginx: one map per combination of method and header conditions, tested inside the location.
    cat >"$dir/nginx.http" <<'NGINX'
    map $request_method $bench_get_head {
        GET     1;
        HEAD    1;
        default 0;
    }
    map "$request_method:$http_x_beta" $bench_get_beta {
        "GET:1" 1;
        default 0;
    }
NGINX
    {
        for ((i = 0; i < ROUTES; i++)); do
            kind=$(route_kind "$i")
            case $kind in
                0) printf '        location ~ ^/svc%d/items(/|$) {\n            if ($bench_get_head = 0) { proxy_pass http://legacy; }\n            proxy_pass http://orders;\n        }\n' "$i" ;;
                1) printf '        location ~ ^/svc%d/users/[^/]+/orders$ {\n            if ($bench_get_beta = 0) { proxy_pass http://legacy; }\n            proxy_pass http://orders;\n        }\n' "$i" ;;
                2) printf '        location ~ ^/svc%d/things$ {\n            if ($http_x_beta != "1") { proxy_pass http://legacy; }\n            proxy_pass http://orders;\n        }\n' "$i" ;;
                3) printf '        location ~ ^/svc%d(/|$) {\n            proxy_pass http://orders;\n        }\n' "$i" ;;
            esac
        done
        printf '        location / {\n            proxy_pass http://legacy;\n        }\n'
    } >"$dir/nginx.locations"

    # haproxy: one path_reg ACL per route, used in order with the method and header ACLs.
    {
        printf '    acl get_head method GET HEAD\n'
        printf '    acl get method GET\n'
        printf '    acl beta req.hdr(x-beta) -m str 1\n'
        for ((i = 0; i < ROUTES; i++)); do
            kind=$(route_kind "$i")
            case $kind in
                0) printf '    acl r%d path_reg ^/svc%d/items(/|$)\n    use_backend orders if r%d get_head\n' "$i" "$i" "$i" ;;
                1) printf '    acl r%d path_reg ^/svc%d/users/[^/]+/orders$\n    use_backend orders if r%d get beta\n' "$i" "$i" "$i" ;;
                2) printf '    acl r%d path_reg ^/svc%d/things$\n    use_backend orders if r%d beta\n' "$i" "$i" "$i" ;;
                3) printf '    acl r%d path_reg ^/svc%d(/|$)\n    use_backend orders if r%d\n' "$i" "$i" "$i" ;;
            esac
        done
    } >"$dir/haproxy.rules"
    : >"$dir/haproxy.backends"

    # ficus: the table itself.
    {
        for ((i = 0; i < ROUTES; i++)); do
            kind=$(route_kind "$i")
            printf '[[routes]]\nname = "r%d"\n' "$i"
            case $kind in
                0) printf 'path = "/svc%d/items/*"\nmethods = ["GET", "HEAD"]\n' "$i" ;;
                1) printf 'path = "/svc%d/users/{id}/orders"\nmethods = ["GET"]\nclient_version = ">=2.3.0, <3"\nheaders = { "x-beta" = "1" }\n' "$i" ;;
                2) printf 'path = "/svc%d/things"\nheaders = { "x-beta" = "1" }\n' "$i" ;;
                3) printf 'path = "/svc%d/*"\n' "$i" ;;
            esac
            printf 'upstream = "orders"\n\n'
        done
    } >"$dir/ficus.routes"
}

# (3) A 10/90 sticky split on x-user-id, each request from a different random user.
# nginx: split_clients (MurmurHash2 of the header) choosing between two upstream blocks.
# haproxy: balance hdr(x-user-id) over two weighted servers, consistent hashing.
# ficus: split + sticky.
scenario_split() {
    local dir=$1
    SC_TITLE="sticky split: GET /, 10% to b and 90% to a by a hash of x-user-id (random per request)"
    SC_PATH="/"
    SC_HEADERS=""
    SC_RANDOM_HEADER="x-user-id"
    SC_DIRECT_PORT=$UP_A
    SC_EXPECT="split"
    SC_SKIP="pingora"
    SC_SHADOW=""
    SC_REFUSED=""
    cat >"$dir/nginx.http" <<'NGINX'
    split_clients "${http_x_user_id}" $bench_split {
        10%     orders;
        *       legacy;
    }
NGINX
    printf '        location / {\n            proxy_pass http://$bench_split;\n        }\n' >"$dir/nginx.locations"
    printf '    use_backend split\n' >"$dir/haproxy.rules"
    cat >"$dir/haproxy.backends" <<HAPROXY

backend split
    balance hdr(x-user-id)
    hash-type consistent
    server a 127.0.0.1:$UP_A weight 90
    server b 127.0.0.1:$UP_B weight 10
HAPROXY
    cat >"$dir/ficus.routes" <<'FICUS'
[[routes]]
name = "split"
path = "/*"
split = { orders = 10, legacy = 90 }
sticky = "header:x-user-id"
FICUS
}

# (4) Shadowing: the pass-through, with every request also mirrored to a second upstream (the
# shadow nginx: its own process on the load core, answering exactly as side a does, so that
# ficus's comparison finds a match, the common case). Measured against pass-through in the same
# run: the difference in CPU per request is what mirroring costs each proxy.
# nginx: `mirror` (ngx_http_mirror_module) to an internal location proxying to the shadow, with
# its own keep-alive upstream block; nginx does not compare the answers, it drops them. The mirror
# subrequest reads only the shadow's response head (ngx_http_mirror_module sets header_only), so
# nginx cannot keep that connection: each mirrored request opens a new one, whatever `keepalive`
# says. That is part of what mirroring costs nginx; the report shows it ("on new connections").
# ficus: a catch-all route to legacy with [routes.shadow] percent = 100 (timeout and max_in_flight
# at their defaults, 10s and 64), which also compares each answer with the client's.
# haproxy and the bare Pingora proxy have no mirror.
scenario_shadow() {
    local dir=$1
    SC_TITLE="shadow: GET / passed through to a, every request mirrored to the shadow upstream (nginx mirror, ficus [routes.shadow] percent = 100)"
    SC_SKIP="nginx-unbatched haproxy pingora"
    SC_SHADOW="fast"
    # shellcheck disable=SC2153 # UP_SHADOW is compare.sh's, like UP_A
    shadow_parts "$dir" "$UP_SHADOW"
    cat >"$dir/nginx.http" <<NGINX
    upstream shadow {
        server 127.0.0.1:$UP_SHADOW;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
NGINX
    cat >"$dir/nginx.locations" <<'NGINX'
        location / {
            mirror /mirror;
            proxy_pass http://legacy;
        }

        location = /mirror {
            internal;
            proxy_pass http://shadow$request_uri;
        }
NGINX
}

# (5) The client's latency with a shadow that answers after SHADOW_DELAY (2 s): ficus only, its
# p99 against pass-through's. With every request sampled, max_in_flight (64) mirrored requests
# are soon waiting on the shadow and every further sample is dropped (counted as `dropped`): by
# design, a slow shadow costs the client nothing and ficus no more than its bound.
scenario_shadow_slow() {
    local dir=$1
    SC_TITLE="shadow-slow: as shadow, but the shadow answers after ${SHADOW_DELAY}s (ficus only: max_in_flight = 64 fills, later samples are dropped, as designed)"
    SC_SKIP="direct nginx nginx-unbatched haproxy pingora"
    SC_SHADOW="slow"
    shadow_parts "$dir" "$UP_SLOW"
}

# (6) The client's latency with a shadow that is down (nothing listens on its port: every
# mirrored request is refused at once and counted as an error): ficus only, p99 against
# pass-through's.
scenario_shadow_down() {
    local dir=$1
    SC_TITLE="shadow-down: as shadow, but nothing listens on the shadow's port (ficus only: every sample is an error)"
    SC_SKIP="direct nginx nginx-unbatched haproxy pingora"
    SC_SHADOW="down"
    shadow_parts "$dir" "$UP_DOWN"
}

# What the shadow scenarios share: the pass-through's request, and ficus's shadowed catch-all
# route to PORT. nginx gets no parts here (scenario_shadow writes its own; the others skip it).
shadow_parts() {
    local dir=$1 port=$2
    SC_PATH="/"
    SC_HEADERS=""
    SC_RANDOM_HEADER=""
    SC_DIRECT_PORT=$UP_A
    SC_EXPECT="a"
    SC_REFUSED=""
    : >"$dir/nginx.http"
    : >"$dir/nginx.locations"
    : >"$dir/haproxy.rules"
    : >"$dir/haproxy.backends"
    cat >"$dir/ficus.routes" <<FICUS
[upstreams.shadow]
url = "http://127.0.0.1:$port"

[[routes]]
name = "shadowed"
path = "/*"
upstream = "legacy"

  [routes.shadow]
  upstream = "shadow"
  percent = 100
FICUS
}

# (7) Plugins (issue 13): one ficus with two catch-all-like routes to legacy: /api/ with a `jwt`
# (RS256, a key pair made here with openssl, one client token reused for every request, as a
# client does until it expires) and a `rate_limit` keyed by the token's `sub` (a limit no run
# reaches, so every request pays for the decision and none is refused), and /bare/ with no
# plugins. The targets are ficus (requests to /api/) and ficus-bare (the same process, requests to
# /bare/), measured in turn like any two targets, so the machine's drift hits both alike. Both send
# the same request, token included: the ratio of the two is what the plugins cost (target: at most
# 1.2x CPU per request), not what a 600-byte header costs. The check proves the plugins are at
# work: without the token, 401.
scenario_plugins() {
    local dir=$1
    SC_TITLE="plugins: GET /api/ with a bearer token through jwt (RS256, the token reused) and rate_limit (key claim:sub); ficus-bare: the same request to a route without plugins, same process"
    SC_PATH="/api/"
    SC_PATH_BARE="/bare/"
    SC_HEADERS="authorization: Bearer $(rs256_token "$WORK/jwt")"
    SC_RANDOM_HEADER=""
    SC_DIRECT_PORT=$UP_A
    SC_EXPECT="a"
    SC_SKIP="direct nginx nginx-unbatched haproxy pingora"
    SC_SHADOW=""
    SC_REFUSED=401
    : >"$dir/nginx.http"
    : >"$dir/nginx.locations"
    : >"$dir/haproxy.rules"
    : >"$dir/haproxy.backends"
    cat >"$dir/ficus.routes" <<FICUS
[plugins.auth]
use = "jwt"
public_key = "$WORK/jwt/public.pem"
issuer = "https://id.bench.example/"
required_claims = ["sub"]
claims_to_headers = { sub = "x-user-id" }

[plugins.limit]
use = "rate_limit"
key = "claim:sub"
rate = "1000000/s"
burst = 1000000

[[routes]]
name = "bare"
path = "/bare/*"
upstream = "legacy"

[[routes]]
name = "api"
path = "/api/*"
upstream = "legacy"
plugins = ["auth", "limit"]
FICUS
}

# Prints an RS256 token (sub "bench-user", valid for a day) signed with the key pair in DIR
# (private.pem, public.pem), made the first time.
rs256_token() {
    local dir=$1 header payload now
    if [ ! -f "$dir/public.pem" ]; then
        mkdir -p "$dir"
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/private.pem" 2>/dev/null ||
            die "openssl cannot make an RSA key"
        openssl pkey -in "$dir/private.pem" -pubout -out "$dir/public.pem" 2>/dev/null ||
            die "openssl cannot write the public key"
    fi
    now=$(date +%s)
    header=$(printf '{"alg":"RS256","typ":"JWT"}' | base64url)
    payload=$(printf '{"iss":"https://id.bench.example/","sub":"bench-user","iat":%d,"exp":%d}' "$now" $((now + 86400)) | base64url)
    printf '%s.%s.%s' "$header" "$payload" \
        "$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$dir/private.pem" -binary | base64url)"
}

base64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
