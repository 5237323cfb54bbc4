"""The broker's configuration files, written from a few values.

Single node, KRaft combined mode (broker and controller in one JVM), loopback
only. Internal topics get replication factor 1, as a single node requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BrokerLayout:
    """Every file an instance owns, under one directory."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def server_properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j2_xml(self) -> Path:
        return self.root / "log4j2.xml"

    @property
    def state_file(self) -> Path:
        return self.root / "instance.json"

    @property
    def stdout_log(self) -> Path:
        return self.logs / "stdout.log"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"


def server_properties(*, port: int, controller_port: int, data_dir: Path) -> str:
    return f"""# Written by mmbus (services/localkafka); edits are overwritten on `mmbus kafka up`.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs={data_dir}
# Topics are created explicitly by the project's admin helper, with their
# partitions and retention; a typo in a topic name must fail, not create one.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# A consumer group of one should not wait 3 s for members that never come.
group.initial.rebalance.delay.ms=0
# After a crash the controller waits out the dead incarnation's session before the
# restarted broker is unfenced; on one loopback node a short session is safe.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=2500
"""


def log4j2_xml(*, logs_dir: Path) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by mmbus: the broker logs to files, never to the terminal that started it. -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="{logs_dir}/server.log"
                 filePattern="{logs_dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="50 MB"/>
      <DefaultRolloverStrategy max="5"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Root level="INFO">
      <AppenderRef ref="server"/>
    </Root>
  </Loggers>
</Configuration>
"""
