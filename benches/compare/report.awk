# Turns the runs of benches/compare.sh into the table on stdout and the JSON file.
#
# Inputs (tab-separated):
#   scenarios.tsv  name, title, check (what the pre-flight check saw), note (the shadow scenarios:
#                  ficus's own shadow counts)
#   runs.tsv       scenario, target, round, ok|failed, rps, p50_us, p99_us, cpu_us_per_req ("-"
#                  for direct), requests, other load % on the load core and on the proxy core, note,
#                  requests the shadow received during the run and connections it accepted ("-"
#                  without a shadow to count)
# Environment: REPORT_JSON (the output path), REPORT_META (the JSON object's first members, already
# formatted), SHADOW_DELAY (seconds the slow shadow waits, for the text).
#
# Per scenario and target it reports the medians over the successful runs; a failed run (socket
# errors or non-2xx responses) is counted but never averaged in.

BEGIN {
    FS = "\t"
    json = ENVIRON["REPORT_JSON"]; meta = ENVIRON["REPORT_META"]
    ntg = split("direct nginx nginx-unbatched haproxy pingora ficus-bare ficus", targets, " ")
}

FNR == NR {
    nsc++; sname[nsc] = $1; stitle[$1] = $2; scheck[$1] = $3; snote[$1] = $4
    next
}

{
    key = $1 SUBSEP $2
    runs[key]++
    nrun++
    run_line[nrun] = sprintf("{\"scenario\":\"%s\",\"target\":\"%s\",\"round\":%d,\"ok\":%s,\"rps\":%s,\"p50_ms\":%s,\"p99_ms\":%s,\"cpu_us_per_req\":%s,\"requests\":%d,\"mirrored\":%s,\"shadow_connections\":%s,\"other_load_pct\":{\"load_core\":%s,\"proxy_core\":%s},\"note\":\"%s\"}",
        $1, $2, $3, ($4 == "ok" ? "true" : "false"), num($5, "%.1f"), ms($6), ms($7), num($8, "%.2f"), $9,
        num($13, "%d"), num($14, "%d"), num($10, "%d"), num($11, "%d"), ($12 == "-" ? "" : esc($12)))
    if ($10 != "-" && $10 + 0 > other[$1]) other[$1] = $10 + 0
    if ($11 != "-" && $11 + 0 > other[$1]) other[$1] = $11 + 0
    if ($4 != "ok") next
    ok[key]++
    rps[key] = rps[key] " " $5
    p50[key] = p50[key] " " $6
    p99[key] = p99[key] " " $7
    if ($8 != "-") cpu[key] = cpu[key] " " $8
    # The share of the answered requests that the shadow received, in %.
    if ($13 != "" && $13 != "-" && $9 > 0) mirrored[key] = mirrored[key] " " (100 * $13 / $9)
    # The connections the shadow accepted, per 100 answered requests.
    if ($14 != "" && $14 != "-" && $9 > 0) shadow_conns[key] = shadow_conns[key] " " (100 * $14 / $9)
}

function num(v, fmt) { return (v == "" || v == "-") ? "null" : sprintf(fmt, v) }
function ms(us) { return (us == "" || us == "-") ? "null" : sprintf("%.3f", us / 1000) }
function esc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return s }

# The median of a space-separated list of numbers, or "" for none.
function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) {
        t = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
    }
    return (n % 2) ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}

function cell(v, fmt) { return v == "" ? "-" : sprintf(fmt, v) }
function cell_ms(us) { return us == "" ? "-" : sprintf("%.2f", us / 1000) }
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "" : a / b }
function minus(a, b) { return (a == "" || b == "") ? "" : a - b }

END {
    out = "{\n" meta ",\n  \"scenarios\": ["
    for (s = 1; s <= nsc; s++) {
        sc = sname[s]
        printf "\n== %s: %s\n", sc, stitle[sc]
        if (scheck[sc] != "") printf "   check: %s\n", scheck[sc]
        # The header's µ is two bytes; written out so that no awk counts it for the width.
        printf "   %-15s %9s %9s %9s %9s %s %8s\n", "target", "rps", "% direct", "p50 ms", "p99 ms", " CPU µs/req", "runs ok"
        direct = median(rps[sc SUBSEP "direct"])
        out = out (s > 1 ? "," : "") "\n    {\"name\":\"" sc "\",\"title\":\"" esc(stitle[sc]) "\",\"check\":\"" esc(scheck[sc]) "\",\"max_other_load_pct\":" (other[sc] + 0) ",\"targets\":["
        first = 1
        for (t = 1; t <= ntg; t++) {
            key = sc SUBSEP targets[t]
            if (!(key in runs)) continue
            r = median(rps[key]); m50 = median(p50[key]); m99 = median(p99[key]); c = median(cpu[key])
            mp = median(mirrored[key]); mc = median(shadow_conns[key])
            pct = ratio(r, direct); if (pct != "") pct *= 100
            med_rps[targets[t]] = r; med_cpu[targets[t]] = c
            printf "   %-15s %9s %9s %9s %9s %11s %8s\n", targets[t], cell(r, "%.0f"), cell(pct, "%.1f%%"),
                cell_ms(m50), cell_ms(m99), cell(c, "%.1f"), (ok[key] + 0) "/" runs[key]
            out = out (first ? "" : ",") sprintf("\n      {\"target\":\"%s\",\"rps\":%s,\"pct_of_direct\":%s,\"p50_ms\":%s,\"p99_ms\":%s,\"cpu_us_per_req\":%s,\"mirrored_pct\":%s,\"shadow_connections_pct\":%s,\"runs_ok\":%d,\"runs\":%d}",
                targets[t], num(r, "%.1f"), num(pct, "%.1f"), ms(m50), ms(m99), num(c, "%.2f"), num(mp, "%.2f"), num(mc, "%.2f"),
                ok[key], runs[key])
            first = 0
            all_cpu[sc, targets[t]] = c; all_rps[sc, targets[t]] = r; all_p99[sc, targets[t]] = m99
            if (mp != "") mirror_line = mirror_line (mirror_line == "" ? "" : ", ") sprintf("%s %.1f%%", targets[t], mp)
            if (mc != "") conns_line = conns_line (conns_line == "" ? "" : ", ") sprintf("%s %.1f%%", targets[t], mc)
        }
        # The shadow scenarios: how much of the load reached the shadow, and what ficus counted.
        # (Medians of the runs, per answered request.)
        if (mirror_line != "") {
            printf "   mirrored, requests that reached the shadow per answered request: %s\n", mirror_line
            if (sc == "shadow-slow")
                printf "   (the shadow answers after %ss: max_in_flight = 64 mirrored requests wait on it and later samples are dropped, as designed)\n", ENVIRON["SHADOW_DELAY"]
        }
        if (conns_line != "") printf "   new connections the shadow accepted per answered request: %s\n", conns_line
        if (snote[sc] != "") printf "   %s\n", snote[sc]
        mirror_line = ""; conns_line = ""
        rc = ratio(med_cpu["ficus"], med_cpu["nginx"]); rr = ratio(med_rps["ficus"], med_rps["nginx"])
        if (rc != "" || rr != "")
            printf "   ficus/nginx: CPU per request %s, rps %s\n", cell(rc, "%.2fx"), cell(rr, "%.2fx")
        # Against nginx writing each access-log line at once (ficus batches its own).
        uc = ratio(med_cpu["ficus"], med_cpu["nginx-unbatched"]); ur = ratio(med_rps["ficus"], med_rps["nginx-unbatched"])
        if (uc != "" || ur != "")
            printf "   ficus/nginx-unbatched: CPU per request %s, rps %s\n", cell(uc, "%.2fx"), cell(ur, "%.2fx")
        # Against the bare Pingora proxy ficus is built on (measured in pass-through only).
        pc = ratio(med_cpu["ficus"], med_cpu["pingora"]); pr = ratio(med_rps["ficus"], med_rps["pingora"])
        if (pc != "" || pr != "")
            printf "   ficus/pingora: CPU per request %s, rps %s\n", cell(pc, "%.2fx"), cell(pr, "%.2fx")
        if (other[sc] > ENVIRON["OTHER_LOAD_WARN"] + 0)
            printf "   warning: other programs took up to %d%% of a core during these runs: the figures are disturbed\n", other[sc]
        out = out sprintf("\n    ],\"note\":\"%s\",\"ficus_over_nginx\":{\"cpu_per_req\":%s,\"rps\":%s},\"ficus_over_nginx_unbatched\":{\"cpu_per_req\":%s,\"rps\":%s},\"ficus_over_pingora\":{\"cpu_per_req\":%s,\"rps\":%s}}", esc(snote[sc]), num(rc, "%.3f"), num(rr, "%.3f"), num(uc, "%.3f"), num(ur, "%.3f"), num(pc, "%.3f"), num(pr, "%.3f"))
        delete med_rps; delete med_cpu
    }
    out = out "\n  ],"
    # The issue's second target: the 1,000-route table within 10% of pass-through, for ficus.
    c1 = all_cpu["passthrough", "ficus"]; c2 = all_cpu["routes1000", "ficus"]
    r1 = all_rps["passthrough", "ficus"]; r2 = all_rps["routes1000", "ficus"]
    rc = ratio(c2, c1); rr = ratio(r2, r1)
    if (rc != "" || rr != "")
        printf "\nficus, 1,000 routes over pass-through: CPU per request %s, rps %s\n", cell(rc, "%.2fx"), cell(rr, "%.2fx")
    out = out sprintf("\n  \"ficus_routes1000_over_passthrough\":{\"cpu_per_req\":%s,\"rps\":%s},", num(rc, "%.3f"), num(rr, "%.3f"))

    # Plugins (issue 13): ficus through jwt and rate_limit over ficus-bare, the same process and
    # request on a route without plugins (target: at most 1.2x CPU per request).
    c1 = all_cpu["plugins", "ficus-bare"]; c2 = all_cpu["plugins", "ficus"]
    r1 = all_rps["plugins", "ficus-bare"]; r2 = all_rps["plugins", "ficus"]
    gc = ratio(c2, c1); gr = ratio(r2, r1)
    if (c1 != "" || c2 != "") {
        printf "\nficus, jwt + rate_limit over the same request on a route without plugins (target: at most 1.2x CPU per request):\n"
        printf "   CPU per request %s (%s / %s µs), rps %s\n", cell(gc, "%.2fx"), cell(c2, "%.1f"), cell(c1, "%.1f"), cell(gr, "%.2fx")
    }
    out = out sprintf("\n  \"ficus_plugins_over_bare\":{\"cpu_per_req\":%s,\"rps\":%s},", num(gc, "%.3f"), num(gr, "%.3f"))

    # Shadowing every request (issue 11): what it adds to each proxy's CPU per request, its shadow
    # scenario less its own pass-through in the same run, and ficus's extra over nginx's (target:
    # below 1). A difference at or below 0 is noise: no ratio is made of it.
    fs = all_cpu["shadow", "ficus"]; fp = all_cpu["passthrough", "ficus"]
    ns = all_cpu["shadow", "nginx"]; np = all_cpu["passthrough", "nginx"]
    fx = minus(fs, fp); nx = minus(ns, np)
    xr = (fx != "" && nx != "" && nx > 0) ? fx / nx : ""
    if (fs != "" || ns != "") {
        printf "\nshadowing every request, extra CPU per request (shadow - passthrough):\n"
        printf "   ficus %s µs (%s - %s), nginx mirror %s µs (%s - %s); ficus/nginx %s (target: below 1)\n",
            cell(fx, "%.1f"), cell(fs, "%.1f"), cell(fp, "%.1f"), cell(nx, "%.1f"), cell(ns, "%.1f"), cell(np, "%.1f"),
            cell(xr, "%.2fx")
        if (fp == "" || np == "")
            printf "   (the extra needs the passthrough scenario in the same run, for ficus and nginx)\n"
        else if (nx != "" && nx <= 0)
            printf "   (nginx's extra is not above 0: noise; run more rounds)\n"
    }
    out = out sprintf("\n  \"shadow_extra_cpu_us_per_req\":{\"ficus\":%s,\"nginx\":%s,\"ficus_over_nginx\":%s},",
        num(fx, "%.2f"), num(nx, "%.2f"), num(xr, "%.3f"))

    # A slow or dead shadow and the client's latency: ficus's p99 over its pass-through p99
    # (target: at most 1.10x).
    p0 = all_p99["passthrough", "ficus"]; ps = all_p99["shadow-slow", "ficus"]; pd = all_p99["shadow-down", "ficus"]
    sr = ratio(ps, p0); dr = ratio(pd, p0)
    if (ps != "" || pd != "") {
        printf "\nficus p99 over its passthrough p99 (target: at most 1.10x):\n"
        printf "   shadow answering after %ss %s (%s / %s ms), shadow down %s (%s / %s ms)\n", ENVIRON["SHADOW_DELAY"],
            cell(sr, "%.2fx"), cell_ms(ps), cell_ms(p0), cell(dr, "%.2fx"), cell_ms(pd), cell_ms(p0)
        if (p0 == "") printf "   (the ratios need the passthrough scenario in the same run)\n"
    }
    out = out sprintf("\n  \"ficus_p99_over_passthrough\":{\"shadow_slow\":%s,\"shadow_down\":%s},", num(sr, "%.3f"), num(dr, "%.3f"))
    out = out "\n  \"runs\": ["
    for (i = 1; i <= nrun; i++) out = out (i > 1 ? "," : "") "\n    " run_line[i]
    out = out "\n  ]\n}\n"
    printf "%s", out > json
}
