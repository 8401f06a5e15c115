"""Pipeline health: ingest, stream processing, dead letters, lag and alert delivery."""

from __future__ import annotations

from grafana_foundation_sdk.builders import heatmap, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.models import prometheus as prom_model

from services.dashboards import promql
from services.dashboards.layout import add_panels, add_row, dashboard
from services.dashboards.panels import PROMETHEUS, query, series_panel

UID = "egov-pipeline-health"
FILE = "pipeline-health.json"

INGEST_EVENTS = "egov_ingest_events_total"


def build() -> Dashboard:
    board = dashboard(
        UID,
        "Sức khỏe đường ống dữ liệu",
        "Pipeline health: ingest requests and rejections, produce latency, events "
        "processed, late and duplicate events, dead letters, lag, alert delivery.",
        refresh="30s",
    ).time("now-6h", "now")
    add_row(board, "Tiếp nhận (ingest)")
    add_panels(board, ingest_panels(), width=8, height=8)
    add_row(board, "Xử lý (metrics)")
    add_panels(board, processing_panels(), width=8, height=8)
    add_row(board, "Độ trễ")
    add_panels(board, lag_panels(), width=12, height=9)
    add_row(board, "Cảnh báo (alerts)")
    add_panels(board, alert_panels(), width=8, height=8)
    return board


def per_second(title: str, description: str, *targets: tuple[str, str]) -> timeseries.Panel:
    panel = series_panel(title, description, "reqps" if "yêu cầu" in title else "eps")
    for i, (expr, legend) in enumerate(targets):
        panel = panel.with_target(query(expr, legend, ref=chr(ord("A") + i)))
    return panel


def ingest_panels() -> list[timeseries.Panel]:
    return [
        per_second(
            "Số yêu cầu mỗi giây theo mã trạng thái",
            "POST /v1/events requests per second by HTTP status.",
            (promql.rate_by("egov_ingest_requests_total", "status"), "{{status}}"),
        ),
        per_second(
            "Sự kiện mỗi giây theo kết quả",
            "Events per second by outcome (accepted, rejected, out_of_scope, unavailable).",
            (promql.rate_by(INGEST_EVENTS, "outcome"), "{{outcome}}"),
        ),
        per_second(
            "Sự kiện bị từ chối theo lý do",
            "Events refused per second, by the refusal code.",
            (promql.rate_by(INGEST_EVENTS, "reason", 'outcome="rejected"'), "{{reason}}"),
        ),
        series_panel(
            "Thời gian ghi vào Kafka (p50, p99)",
            "Time from the first send to the broker's acknowledgement of a whole request.",
            "s",
        )
        .with_target(
            query(promql.quantile(0.99, "egov_ingest_produce_duration_seconds"), "p99", ref="A")
        )
        .with_target(
            query(promql.quantile(0.5, "egov_ingest_produce_duration_seconds"), "p50", ref="B")
        ),
        series_panel("Số sự kiện mỗi yêu cầu (p50, p99)", "Events per request.", "short")
        .with_target(query(promql.quantile(0.99, "egov_ingest_batch_events"), "p99", ref="A"))
        .with_target(query(promql.quantile(0.5, "egov_ingest_batch_events"), "p50", ref="B")),
        series_panel(
            "Dịch vụ đang chạy",
            "1 when Prometheus reached the service's /metrics at its last scrape.",
            "short",
        )
        .min(0)
        .max(1)
        .with_target(query('up{job=~"ingest|metrics|alerts"}', "{{job}} {{instance}}")),
    ]


def processing_panels() -> list[timeseries.Panel]:
    return [
        per_second(
            "Sự kiện đã xử lý theo loại",
            "Valid events counted by the metrics workers per second, by event type.",
            (promql.rate_by("egov_events_processed_total", "type"), "{{type}}"),
        ),
        per_second(
            "Sự kiện muộn, quá muộn, trùng lặp",
            "Late events (counted where they happened), too-late events (dead-lettered for "
            "a deliberate backfill), duplicates (same source and id, counted once).",
            (promql.rate_by("egov_events_late_total", "type"), "muộn {{type}}"),
            (promql.rate_by("egov_events_too_late_total", "type"), "quá muộn {{type}}"),
            (promql.rate_by("egov_events_duplicate_total", "type"), "trùng {{type}}"),
            (promql.rate_by("egov_events_crosswalked_total", "type"), "mã cũ {{type}}"),
        ),
        per_second(
            "Thư chết (dead letters) theo lý do",
            "Records sent to the dead-letter topic per second, by reason and source topic.",
            (
                promql.rate_by("egov_events_dead_lettered_total", "reason, topic"),
                "{{reason}} ({{topic}})",
            ),
        ),
        series_panel(
            "Bản ghi đang bị giữ lại (CSDL từ chối)",
            "Records a worker holds, uncounted and their offsets unmoved, after PostgreSQL "
            "refused a record's data with nothing of its type counted beside it (a database "
            "refusing a whole type looks like this: docs/metrics.md). Above 0 for long: look "
            "at the worker's log.",
            "short",
        )
        .min(0)
        .with_target(query("sum by (instance) (egov_metrics_records_held)", "{{instance}}")),
    ]


def lag_heatmap(histogram: str, title: str, description: str) -> heatmap.Panel:
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit("s")
        .calculate(False)
        .cell_gap(1)
        .show_legend()
        .show_tooltip()
        .with_target(
            query(f"sum by (le) (increase({histogram}_bucket[{promql.RATE}]))", "{{le}}").format(
                prom_model.PromQueryFormat.HEATMAP
            )
        )
    )


def lag_panels() -> list[timeseries.Panel | heatmap.Panel]:
    return [
        series_panel(
            "Độ trễ đầu-cuối (p50, p99)",
            "End-to-end lag: event time to processed, and ingest (Kafka message timestamp) "
            "to processed, in seconds.",
            "s",
        )
        .with_target(
            query(promql.quantile(0.99, promql.INGEST_TIME_LAG), "tiếp nhận→xử lý p99", ref="A")
        )
        .with_target(
            query(promql.quantile(0.5, promql.INGEST_TIME_LAG), "tiếp nhận→xử lý p50", ref="B")
        )
        .with_target(
            query(promql.quantile(0.99, promql.EVENT_TIME_LAG), "sự kiện→xử lý p99", ref="C")
        ),
        lag_heatmap(
            promql.INGEST_TIME_LAG,
            "Phân bố độ trễ tiếp nhận→xử lý",
            "Distribution of the lag from ingest (Kafka message timestamp) to processed.",
        ),
    ]


def alert_panels() -> list[timeseries.Panel]:
    return [
        series_panel(
            "Cảnh báo theo trạng thái",
            "Open alerts held by the alerts service, by state (pending, firing).",
            "short",
        ).with_target(query(f"sum by (state) ({promql.ALERTS_OPEN})", "{{state}}")),
        per_second(
            "Thông báo đã gửi / thất bại",
            "Deliveries per second by outcome (sent, failed) and sink (alertmanager, webhook, "
            "kafka).",
            (promql.rate_by(promql.NOTIFICATIONS, "outcome, sink"), "{{outcome}} {{sink}}"),
        ),
        series_panel(
            "Độ trễ đánh giá cảnh báo",
            "How far behind the alerts service's last evaluation is, in seconds.",
            "s",
        ).with_target(query(f"max({promql.EVALUATION_LAG})", "độ trễ")),
    ]
