"""Small pieces: keyframe request coalescing, configuration, tasks."""

import asyncio
import logging
import os
import subprocess
import sys

import pytest

from core.settings import ConfigError, Settings
from core.settings.interaction import default_interaction_workers
from core.settings.media import default_media_workers
from mediaserver.sfu.keyframe_requester import KeyframeRequester
from core.tasks import TaskOwner

pytestmark = pytest.mark.inprocess


async def test_keyframe_requests_are_coalesced_and_never_lost():
    sent: list[float] = []
    loop = asyncio.get_running_loop()

    async def send_pli():
        sent.append(loop.time())

    tasks = TaskOwner(logging.getLogger("test"))
    requester = KeyframeRequester(send_pli, tasks, min_interval=0.2)
    t0 = loop.time()
    for _ in range(50):  # a join storm
        requester.request()
    await asyncio.sleep(0.05)
    assert len(sent) == 1 and sent[0] - t0 < 0.05
    requester.request()  # during the quiet period: delivered when it ends
    await asyncio.sleep(0.3)
    assert len(sent) == 2 and sent[1] - sent[0] >= 0.19
    assert requester.requested == 51 and requester.sent == 2
    await tasks.close()


async def test_task_owner_logs_failures_and_cancels_on_close(caplog):
    owner = TaskOwner(logging.getLogger("test.owner"))

    async def boom():
        raise RuntimeError("bad")

    owner.spawn(boom(), name="boom")
    forever = owner.spawn(asyncio.sleep(3600), name="sleeper")
    await asyncio.sleep(0.01)
    assert "task boom failed" in caplog.text
    await owner.close()
    assert forever.cancelled() and len(owner) == 0
    assert owner.spawn(asyncio.sleep(0), name="late") is None  # closed owners take no work


def test_settings_env_then_cli(tmp_path):
    env = {"STAGEPASS_PORT": "9000", "STAGEPASS_ROOMS": "maths=abcdefgh1,art=abcdefgh2"}
    s = Settings.load(["--port", "9100", "--data-dir", str(tmp_path)], env)
    assert s.server.port == 9100 and s.server.data_dir == tmp_path
    assert s.stream_keys() == {"maths": "abcdefgh1", "art": "abcdefgh2"}
    # interaction workers: one per CPU this process may use, capped by memory and 16 ('auto')
    assert s.interaction.interaction_workers == default_interaction_workers()
    assert 1 <= s.interaction.interaction_workers <= min(len(os.sched_getaffinity(0)), 16)
    assert Settings.load([], {"STAGEPASS_INTERACTION_WORKERS": "1"}).interaction.interaction_workers == 1
    cores = Settings.load(["--interaction-workers", "cores"], {"STAGEPASS_INTERACTION_WORKERS": "3"})
    assert cores.interaction.interaction_workers == min(len(os.sched_getaffinity(0)), 64)


@pytest.mark.parametrize(
    "env,message",
    [
        ({"STAGEPASS_PORT": "http"}, "port"),
        ({"STAGEPASS_PORT": "70000"}, "port"),
        ({"STAGEPASS_ROOMS": "maths"}, "NAME=STREAM_KEY"),
        ({"STAGEPASS_ROOMS": "Maths!=abcdefghij"}, "not a room name"),
        ({"STAGEPASS_ROOMS": "maths=short"}, "shorter than 8"),
        ({"STAGEPASS_ICE_SERVERS": "http://x"}, "stun:/turn:"),
        ({"STAGEPASS_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"STAGEPASS_CONNECT_TIMEOUT": "0"}, "connect_timeout"),
        ({"STAGEPASS_PUBLIC_URL": "live.example.org"}, "public_url"),
        ({"STAGEPASS_PUBLIC_URL": "https://live.example.org/x?y=1"}, "public_url"),
        ({"STAGEPASS_RECORDING_KEYFRAME_INTERVAL": "-1"}, "recording_keyframe_interval"),
        ({"STAGEPASS_WORKERS": "0"}, "workers: between 1 and 256"),
        ({"STAGEPASS_WORKERS": "many"}, "workers: expected a number or 'cores' or 'auto', got 'many'"),
        ({"STAGEPASS_WORKERS": "3", "STAGEPASS_UDP_PORT": "40000-40001"},
         r"udp_port: 40000-40001 has 2 UDP port\(s\) but there are 3 media workers .* set --udp-port 40000-40002 "
         r"\(STAGEPASS_UDP_PORT\), or --workers 2"),
        ({"STAGEPASS_WORKERS": "2", "STAGEPASS_UDP_PORT": "40000"}, "set --udp-port 40000-40001 .*or --workers 1"),
        ({"STAGEPASS_INTERACTION_WORKERS": "0"}, "interaction_workers: 1 to 64"),
        ({"STAGEPASS_INTERACTION_WORKERS": "two"}, "interaction_workers"),
        ({"STAGEPASS_DB_POOL_SIZE": "0"}, r"db_pool_size: expected a number of connections, 1 or more, got 0"),
        ({"STAGEPASS_WORKER_DB_POOL_SIZE": "-2"}, r"worker_db_pool_size: .* 1 or more, got -2"),
        ({"STAGEPASS_WORKER_DB_POOL_SIZE": "few"}, r"worker_db_pool_size: .* 1 or more, got 'few'"),
        ({"STAGEPASS_DB_MAX_OVERFLOW": "-1"}, r"db_max_overflow: .* 0 or more, got -1"),
        ({"STAGEPASS_WORKER_DB_MAX_OVERFLOW": "2.5"}, r"worker_db_max_overflow: .* 0 or more, got '2.5'"),
        ({"STAGEPASS_DB_POOL_SIZE": "5000"}, r"db_pool_size: 1 to 1000 connections, got 5000"),
    ],
)
def test_settings_reject_bad_values(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load([], env)


def test_database_pool_settings():
    """The control plane keeps SQLAlchemy's default pool, each interaction worker a small one; the
    flag wins over the environment, and an overflow of 0 (no connection past the pool) is valid."""
    s = Settings.load([], {}).server
    assert (s.db_pool_size, s.db_max_overflow, s.worker_db_pool_size, s.worker_db_max_overflow) == (5, 10, 2, 2)
    s = Settings.load(["--worker-db-pool-size", "3", "--db-max-overflow", "0"],
                      {"STAGEPASS_WORKER_DB_POOL_SIZE": "1", "STAGEPASS_DB_POOL_SIZE": "8",
                       "STAGEPASS_WORKER_DB_MAX_OVERFLOW": "0"}).server
    assert (s.db_pool_size, s.db_max_overflow, s.worker_db_pool_size, s.worker_db_max_overflow) == (8, 0, 3, 0)


def test_media_workers_setting():
    # one per usable CPU, capped by memory ('auto'); 'cores': one per usable CPU
    assert Settings.load([], {}).media.workers == default_media_workers()
    assert 1 <= Settings.load([], {}).media.workers <= len(os.sched_getaffinity(0))
    assert Settings.load([], {"STAGEPASS_WORKERS": "auto"}).media.workers == default_media_workers()
    assert Settings.load([], {"STAGEPASS_WORKERS": "1"}).media.workers == 1  # media in the server's own process
    # a fixed UDP port serves one worker; 0 (a free port each) and 'off' serve any number
    assert Settings.load(["--workers", "1", "--udp-port", "40000"], {}).media.udp_port_for(0) == 40000
    assert Settings.load(["--workers", "4"], {"STAGEPASS_UDP_PORT": "off"}).media.udp_port_for(3) is None
    assert Settings.load(["--workers", "3"], {"STAGEPASS_WORKERS": "2"}).media.workers == 3
    assert Settings.load([], {"STAGEPASS_WORKERS": "cores"}).media.workers == len(os.sched_getaffinity(0))
    # a node of several (REDIS_URL) runs media workers too
    node = Settings.load(["--workers", "2"], {"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert node.media.workers == 2 and node.server.redis_url == "redis://127.0.0.1:6379/0"


def test_worker_defaults_count_only_the_cpus_this_process_may_use():
    """A process limited to one CPU (``taskset``, a container's cpuset), or told so by
    ``LOKY_MAX_CPU_COUNT`` (loky counts the CPUs), defaults to one worker of each kind, the
    single-process path, however many CPUs the machine has."""
    code = ("from core.settings import Settings; s = Settings.load([], {}); "
            "print(s.media.workers, s.interaction.interaction_workers)")
    one = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
    assert one.stdout.split() == ["1", "1"], one.stderr
    told = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LOKY_MAX_CPU_COUNT": "1"})
    assert told.stdout.split() == ["1", "1"], told.stderr


@pytest.mark.parametrize("told", ["two", "2.5", ""])
def test_a_cpu_count_that_is_not_a_number_is_a_configuration_error(monkeypatch, told):
    """loky reads ``LOKY_MAX_CPU_COUNT`` with ``int()``; the worker defaults count the CPUs
    through it, so a bad value names the variable instead of a bare ``ValueError``."""
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", told)
    expected = rf"LOKY_MAX_CPU_COUNT: expected a whole number of CPUs this process may use \(e.g. 2\), got {told!r}"
    for argv in ([], ["--workers", "cores", "--interaction-workers", "1"]):
        with pytest.raises(ConfigError, match=expected):
            Settings.load(argv, {})
    # numbers given for both counts need no CPU count
    assert Settings.load(["--workers", "2", "--interaction-workers", "1"], {}).media.workers == 2


GB = 1 << 30


def test_worker_defaults_stop_at_the_most_each_setting_accepts(monkeypatch):
    """A 300-CPU host with 256 GB starts 256 media workers and 16 interaction workers by
    default ('auto'); 'cores' asks one per CPU (at most 256 media, 64 interaction workers), and
    a number wins over both."""
    import core.settings.memory
    import core.settings.parsing

    monkeypatch.setattr(core.settings.parsing, "usable_cpus", lambda: 300)
    monkeypatch.setattr(core.settings.memory, "usable_memory", lambda: 256 * GB)
    for s in (Settings.load([], {}), Settings.load(["--workers", "cores", "--interaction-workers", "auto"], {}),
              Settings.load(["--workers", "auto"], {})):
        assert (s.media.workers, s.interaction.interaction_workers) == (256, 16)
    assert Settings.load(["--interaction-workers", "cores"], {}).interaction.interaction_workers == 64
    assert Settings.load(["--interaction-workers", "40"], {}).interaction.interaction_workers == 40
    with pytest.raises(ConfigError, match="interaction_workers: 1 to 64, 'cores' or 'auto', got 65"):
        Settings.load(["--interaction-workers", "65"], {})
    with pytest.raises(ConfigError, match="expected a number or 'cores' or 'auto', got 'many'"):
        Settings.load(["--interaction-workers", "many"], {})


@pytest.mark.parametrize("cpus,memory,workers", [
    (64, 8 * GB, 8),  # a big host with little memory: a quarter of it at 256 MB a worker
    (64, 6 * GB + GB // 2, 6),  # rounded down
    (4, GB, 1),  # a 1 GB container: media and Socket.IO in the server's own process
    (4, 2 * GB - 1, 1),  # under 2 GB: still one
    (4, 64 * GB, 4),  # plenty of memory: one per CPU
])
def test_the_default_worker_counts_fit_the_memory(monkeypatch, cpus, memory, workers):
    """Media and interaction workers alike: each kind may take a quarter of the usable memory at
    256 MB a worker ('auto', the default); 'cores' (media) and a number are not capped."""
    import core.settings.memory
    import core.settings.parsing

    monkeypatch.setattr(core.settings.parsing, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(core.settings.memory, "usable_memory", lambda: memory)
    for s in (Settings.load([], {}), Settings.load(["--workers", "auto", "--interaction-workers", "auto"], {})):
        assert (s.media.workers, s.interaction.interaction_workers) == (workers, workers)
    assert Settings.load(["--workers", "cores"], {}).media.workers == cpus  # one per CPU, memory or not
    given = Settings.load(["--workers", str(cpus), "--interaction-workers", str(cpus)], {})
    assert (given.media.workers, given.interaction.interaction_workers) == (cpus, cpus)


def test_usable_memory_is_the_cgroup_limit_when_lower(monkeypatch, tmp_path):
    import core.settings.memory as memory

    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(memory, "_LIMIT_FILES", (limit, tmp_path / "absent"))
    limit.write_text("max\n")  # cgroup v2 without a limit
    assert memory.usable_memory() == physical
    limit.write_text(f"{GB}\n")  # docker --memory 1g
    assert memory.usable_memory() == min(GB, physical)
    limit.write_text(f"{physical * 4}\n")  # a limit over the machine's memory
    assert memory.usable_memory() == physical


def test_default_room_key_is_generated_once_and_private(tmp_path):
    s = Settings.build(data_dir=tmp_path / "d")
    keys = s.stream_keys()
    assert list(keys) == ["demo"] and len(keys["demo"]) >= 16
    assert s.stream_keys() == keys
    assert (tmp_path / "d" / "stream-keys.json").stat().st_mode & 0o077 == 0


async def test_keyframe_that_arrives_anyway_cancels_the_queued_request():
    sent = []

    async def send_pli():
        sent.append(1)

    tasks = TaskOwner(logging.getLogger("test"))
    requester = KeyframeRequester(send_pli, tasks, min_interval=0.1)
    requester.request()
    await asyncio.sleep(0.02)
    requester.request()  # queued for the end of the quiet period...
    requester.satisfied()  # ...but a keyframe went by
    await asyncio.sleep(0.15)
    assert len(sent) == 1
    await tasks.close()
