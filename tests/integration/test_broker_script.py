"""scripts/kafka-broker.sh formats and starts a broker whatever its cluster id. Kafka's ids are URL-safe base64, so
one random id in 64 starts with "-", which Kafka's storage tool once read as an option: a full suite failed so
(a drill's broker of its own would not start)."""

from bench.drills import Broker

DASHED = "-KPq1h_9vPq_uONRk4Eptg"  # the id of that failure


def test_a_cluster_id_that_starts_with_a_dash_formats_and_starts():
    broker = Broker()
    (broker.dir / "cluster.id").write_text(DASHED + "\n")  # as the script keeps it between starts
    try:
        broker.start()
        assert f"cluster.id={DASHED}" in (broker.dir / "kraft-logs" / "meta.properties").read_text()
    finally:
        broker.destroy()
