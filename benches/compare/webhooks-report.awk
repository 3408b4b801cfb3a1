# Turns the runs of benches/webhooks.sh into its table on stdout and its JSON file.
#
# Inputs (tab-separated):
#   runs.tsv     the emitting runs, as compare.sh records them: scenario (emit), target, round,
#                ok|failed, rps, p50_us, p99_us, cpu_us_per_req, requests, other load % on the
#                load core and on the proxy core, note, and two unused columns
#   deliver.tsv  one line per delivery round: round, ok|failed, events, seconds, events/s,
#                events/s between 10% and 90% delivered, ficus's share of its core (%), ficus's
#                CPU µs per event, delivered (per the outbox), requests the receiver got,
#                distinct webhook-ids among them, other load % on the load core and on the proxy core
# Environment: REPORT_JSON (the output path), DATA_WHERE, FSYNC_MS, CONNECTIONS, EVENTS,
# MAX_IN_FLIGHT, EMIT_DELIVERY, EMIT_COUNTS, EMIT_COUNTS_OK, CRASH_COUNTS, CRASH_OK,
# OTHER_LOAD_WARN, VERSION.
#
# Medians over the successful runs and rounds; a failed one is counted, never averaged in.

BEGIN {
    FS = "\t"
    ntg = split("direct ficus ficus-webhook", targets, " ")
    warn = ENVIRON["OTHER_LOAD_WARN"] + 0
}

FNR == NR {
    key = $2
    runs[key]++
    if ($10 + 0 > other_emit) other_emit = $10 + 0
    if ($11 + 0 > other_emit) other_emit = $11 + 0
    if ($4 != "ok") next
    ok[key]++
    rps[key] = rps[key] " " $5; p50[key] = p50[key] " " $6; p99[key] = p99[key] " " $7
    if ($8 != "-") cpu[key] = cpu[key] " " $8
    next
}

{
    nd++
    d_line[nd] = $0
    if ($12 + 0 > other_deliver) other_deliver = $12 + 0
    if ($13 + 0 > other_deliver) other_deliver = $13 + 0
    if ($2 != "ok") next
    d_ok++
    d_rate = d_rate " " $5; d_steady = d_steady " " $6; d_core = d_core " " $7; d_us = d_us " " $8
}

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
function num(v, fmt) { return v == "" ? "null" : sprintf(fmt, v) }
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "" : a / b }
function esc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return s }
function verdict(v, target) { return v == "" ? "not measured" : (v >= target ? "met" : "MISSED") }

END {
    json = "{\n  \"version\": \"" esc(ENVIRON["VERSION"]) "\",\n  \"data_dir\": \"" esc(ENVIRON["DATA_WHERE"]) "\",\n  \"fsync_ms\": " ENVIRON["FSYNC_MS"] ","
    printf "outboxes in %s; a lone synchronous 4 KiB write there (dd oflag=dsync) takes %s ms\n", ENVIRON["DATA_WHERE"], ENVIRON["FSYNC_MS"]

    if (length(runs) > 0) {
        printf "\n== emitting: POST /orders (small JSON, 201 from the upstream), %s connections, ficus with and without [routes.webhook] (deliveries %s)\n",
            ENVIRON["CONNECTIONS"], ENVIRON["EMIT_DELIVERY"]
        # The header's µ is two bytes; written out so that no awk counts it for the width.
        printf "   %-15s %9s %9s %9s %s %8s\n", "target", "rps", "p50 ms", "p99 ms", " CPU µs/req", "runs ok"
        json = json "\n  \"emit\": {\"connections\": " ENVIRON["CONNECTIONS"] ", \"deliveries\": \"" ENVIRON["EMIT_DELIVERY"] "\", \"targets\": ["
        for (t = 1; t <= ntg; t++) {
            k = targets[t]
            if (!(k in runs)) continue
            r = median(rps[k]); c = median(cpu[k]); m50 = median(p50[k]); m99 = median(p99[k])
            med_rps[k] = r; med_cpu[k] = c
            printf "   %-15s %9s %9s %9s %11s %8s\n", k, cell(r, "%.0f"), cell(m50 / 1000, "%.2f"),
                cell(m99 / 1000, "%.2f"), cell(c, "%.1f"), (ok[k] + 0) "/" runs[k]
            json = json (t > 1 ? "," : "") sprintf("\n    {\"target\": \"%s\", \"rps\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"cpu_us_per_req\": %s, \"runs_ok\": %d, \"runs\": %d}",
                k, num(r, "%.1f"), num(m50 == "" ? "" : m50 / 1000, "%.3f"), num(m99 == "" ? "" : m99 / 1000, "%.3f"), num(c, "%.2f"), ok[k], runs[k])
        }
        er = ratio(med_rps["ficus-webhook"], med_rps["ficus"])
        ec = ratio(med_cpu["ficus-webhook"], med_cpu["ficus"])
        extra = (med_cpu["ficus-webhook"] != "" && med_cpu["ficus"] != "") ? med_cpu["ficus-webhook"] - med_cpu["ficus"] : ""
        printf "   ficus-webhook/ficus: rps %s, CPU per request %s (%s µs more)\n", cell(er, "%.2fx"), cell(ec, "%.2fx"), cell(extra, "%+.1f")
        if (ENVIRON["EMIT_COUNTS"] != "") printf "   outbox after the runs: %s\n      %s\n", ENVIRON["EMIT_COUNTS"], ENVIRON["EMIT_COUNTS_OK"]
        if (ENVIRON["CRASH_COUNTS"] != "") printf "   SIGKILL mid-run: %s\n      %s\n", ENVIRON["CRASH_COUNTS"], ENVIRON["CRASH_OK"]
        if (other_emit > warn)
            printf "   warning: other programs took up to %d%% of a core during these runs: the figures are disturbed\n", other_emit
        json = json sprintf("\n  ], \"webhook_over_plain\": {\"rps\": %s, \"cpu_per_req\": %s}, \"outbox\": \"%s\", \"outbox_check\": \"%s\", \"crash\": \"%s\", \"crash_check\": \"%s\", \"max_other_load_pct\": %d},",
            num(er, "%.3f"), num(ec, "%.3f"), esc(ENVIRON["EMIT_COUNTS"]), esc(ENVIRON["EMIT_COUNTS_OK"]),
            esc(ENVIRON["CRASH_COUNTS"]), esc(ENVIRON["CRASH_OK"]), other_emit)
    }

    if (nd > 0) {
        printf "\n== delivering: %s events a round from a full outbox to nginx answering 204, max_in_flight = %s\n",
            ENVIRON["EVENTS"], ENVIRON["MAX_IN_FLIGHT"]
        printf "   %5s %9s %11s %8s %11s %s %9s %9s %9s %s %6s\n", "round", "events/s", "10-90% /s", "seconds",
            "ficus core", "  µs/event", "delivered", "received", "distinct", "  other load", "ok"
        json = json "\n  \"deliver\": {\"events\": " ENVIRON["EVENTS"] ", \"max_in_flight\": " ENVIRON["MAX_IN_FLIGHT"] ", \"rounds\": ["
        for (i = 1; i <= nd; i++) {
            split(d_line[i], f, "\t")
            printf "   %5d %9d %11d %8.2f %10d%% %10.1f %9d %9d %9d %7d%%/%d%% %6s\n", f[1], f[5], f[6], f[4], f[7], f[8],
                f[9], f[10], f[11], f[12], f[13], f[2]
            json = json (i > 1 ? "," : "") sprintf("\n    {\"round\": %d, \"ok\": %s, \"seconds\": %.2f, \"events_per_s\": %d, \"steady_events_per_s\": %d, \"ficus_core_pct\": %d, \"ficus_us_per_event\": %.1f, \"delivered\": %d, \"received\": %d, \"distinct_ids\": %d, \"other_load_pct\": {\"load_core\": %d, \"proxy_core\": %d}}",
                f[1], (f[2] == "ok" ? "true" : "false"), f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], f[13])
        }
        dr = median(d_rate)
        printf "   median of %d good rounds: %s events/s (10-90%%: %s), ficus %s%% of its core, %s µs per event\n", d_ok,
            cell(dr, "%.0f"), cell(median(d_steady), "%.0f"), cell(median(d_core), "%.0f"), cell(median(d_us), "%.1f")
        if (other_deliver > warn)
            printf "   warning: other programs took up to %d%% of a core during these rounds: the figures are disturbed\n", other_deliver
        json = json sprintf("\n  ], \"events_per_s\": %s, \"steady_events_per_s\": %s, \"ficus_core_pct\": %s, \"ficus_us_per_event\": %s, \"max_other_load_pct\": %d},",
            num(dr, "%.0f"), num(median(d_steady), "%.0f"), num(median(d_core), "%.0f"), num(median(d_us), "%.1f"), other_deliver)
    }

    printf "\ntargets (issue 12):\n"
    # Met only with every answered write's event in the outbox, after the runs and after the crash.
    checked = ENVIRON["EMIT_COUNTS_OK"] ~ /^ok/ && (ENVIRON["CRASH_OK"] == "" || ENVIRON["CRASH_OK"] ~ /^ok/)
    printf "   emitting: ficus with a webhook at %s of its rps without one, every answered write's event stored %s (target: at least 50%%): %s\n",
        cell(er == "" ? "" : 100 * er, "%.1f%%"), (checked ? "(checked)" : "(NOT as checked)"),
        (checked || er == "") ? verdict(er, 0.5) : "MISSED"
    printf "   delivering: %s events per second with max_in_flight = %s (target: at least 2,000): %s\n",
        cell(dr, "%.0f"), ENVIRON["MAX_IN_FLIGHT"], verdict(dr, 2000)
    json = json sprintf("\n  \"targets\": {\"emit_pct_of_plain\": %s, \"deliver_events_per_s\": %s}\n}\n",
        num(er == "" ? "" : 100 * er, "%.1f"), num(dr, "%.0f"))
    printf "%s", json > ENVIRON["REPORT_JSON"]
}
