# docs/performance.png from bench/run_all.sh's scale table (BUILD_DIR/bench-out/scale.dat):
#   bindings  read_p50  read_p99  list_p50  write_p50  rss_mib  baseline_p50
# Latency on the left axis (log), RSS on the right; bindings on a log axis.
if (!exists("datafile")) datafile = "build/bench-out/scale.dat"
if (!exists("outfile")) outfile = "docs/performance.png"
set terminal pngcairo size 900,520 font "DejaVu Sans,10"
set output outfile
set title "hearthd: request latency and RSS against the size of the binding state"
set key top left box opaque
set grid
set logscale x 10
set xlabel "bindings (10 per device)"
set format x "10^{%L}"
set xrange [50:200000]
set logscale y 10
set ylabel "latency through the broker, ms (p50; p99 dashed)"
set yrange [0.05:200]
set y2label "RSS, MiB"
set y2range [0:40]
set y2tics 0,8,40
set ytics nomirror
plot datafile using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "getDeviceDetail p50", \
     datafile using 1:3 with linespoints lw 1 dt 2 pt 7 lc rgb "#1f77b4" title "getDeviceDetail p99", \
     datafile using 1:4 with linespoints lw 2 pt 5 lc rgb "#2ca02c" title "getBoundDevices p50", \
     datafile using 1:5 with linespoints lw 2 pt 9 lc rgb "#d62728" title "bind+unbind (2 fsyncs) p50", \
     datafile using 1:7 with linespoints lw 1 pt 1 lc rgb "#7f7f7f" title "baseline: broker echo p50", \
     datafile using 1:6 axes x1y2 with linespoints lw 2 pt 13 lc rgb "#9467bd" title "RSS (right axis)", \
     32 axes x1y2 with lines dt 3 lc rgb "#9467bd" title "RSS target 32 MiB"
