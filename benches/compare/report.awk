# Turns the runs of benches/compare.sh into the table on stdout and the JSON file.
#
# Inputs (tab-separated):
#   scenarios.tsv  name, title, check (what the pre-flight check saw)
#   runs.tsv       scenario, target, round, ok|failed, rps, p50_us, p99_us, cpu_us_per_req ("-"
#                  for direct), requests, other load % on the load core and on the proxy core, note
# Environment: REPORT_JSON (the output path), REPORT_META (the JSON object's first members, already
# formatted).
#
# Per scenario and target it reports the medians over the successful runs; a failed run (socket
# errors or non-2xx responses) is counted but never averaged in.

BEGIN {
    FS = "\t"
    json = ENVIRON["REPORT_JSON"]; meta = ENVIRON["REPORT_META"]
    ntg = split("direct nginx nginx-unbatched haproxy pingora ficus", targets, " ")
}

FNR == NR {
    nsc++; sname[nsc] = $1; stitle[$1] = $2; scheck[$1] = $3
    next
}

{
    key = $1 SUBSEP $2
    runs[key]++
    nrun++
    run_line[nrun] = sprintf("{\"scenario\":\"%s\",\"target\":\"%s\",\"round\":%d,\"ok\":%s,\"rps\":%s,\"p50_ms\":%s,\"p99_ms\":%s,\"cpu_us_per_req\":%s,\"requests\":%d,\"other_load_pct\":{\"load_core\":%s,\"proxy_core\":%s},\"note\":\"%s\"}",
        $1, $2, $3, ($4 == "ok" ? "true" : "false"), num($5, "%.1f"), ms($6), ms($7), num($8, "%.2f"), $9,
        num($10, "%d"), num($11, "%d"), ($12 == "-" ? "" : esc($12)))
    if ($10 != "-" && $10 + 0 > other[$1]) other[$1] = $10 + 0
    if ($11 != "-" && $11 + 0 > other[$1]) other[$1] = $11 + 0
    if ($4 != "ok") next
    ok[key]++
    rps[key] = rps[key] " " $5
    p50[key] = p50[key] " " $6
    p99[key] = p99[key] " " $7
    if ($8 != "-") cpu[key] = cpu[key] " " $8
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
            pct = ratio(r, direct); if (pct != "") pct *= 100
            med_rps[targets[t]] = r; med_cpu[targets[t]] = c
            printf "   %-15s %9s %9s %9s %9s %11s %8s\n", targets[t], cell(r, "%.0f"), cell(pct, "%.1f%%"),
                cell_ms(m50), cell_ms(m99), cell(c, "%.1f"), (ok[key] + 0) "/" runs[key]
            out = out (first ? "" : ",") sprintf("\n      {\"target\":\"%s\",\"rps\":%s,\"pct_of_direct\":%s,\"p50_ms\":%s,\"p99_ms\":%s,\"cpu_us_per_req\":%s,\"runs_ok\":%d,\"runs\":%d}",
                targets[t], num(r, "%.1f"), num(pct, "%.1f"), ms(m50), ms(m99), num(c, "%.2f"), ok[key], runs[key])
            first = 0
            all_cpu[sc, targets[t]] = c; all_rps[sc, targets[t]] = r
        }
        rc = ratio(med_cpu["ficus"], med_cpu["nginx"]); rr = ratio(med_rps["ficus"], med_rps["nginx"])
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
        out = out sprintf("\n    ],\"ficus_over_nginx\":{\"cpu_per_req\":%s,\"rps\":%s},\"ficus_over_nginx_unbatched\":{\"cpu_per_req\":%s,\"rps\":%s},\"ficus_over_pingora\":{\"cpu_per_req\":%s,\"rps\":%s}}", num(rc, "%.3f"), num(rr, "%.3f"), num(uc, "%.3f"), num(ur, "%.3f"), num(pc, "%.3f"), num(pr, "%.3f"))
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
    out = out "\n  \"runs\": ["
    for (i = 1; i <= nrun; i++) out = out (i > 1 ? "," : "") "\n    " run_line[i]
    out = out "\n  ]\n}\n"
    printf "%s", out > json
}
