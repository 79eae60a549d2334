"""``--scheduler``: the same run spread over a real Dask distributed cluster on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import LocalCluster

from helpers.fake_openai import FakeOpenAI
from helpers.fake_static_model import FakeStaticModel
from helpers.servers import unused_port
from lamarena.errors import ConfigError
from lamarena.settings import Settings

from .test_runner import GENDER_ANSWERS, HAND_MACRO_F1, Fixture, read_rows, run, script
from .test_usage import CALL_COST, SAMPLES, models_yaml


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as local:
        yield local


async def test_a_run_on_the_cluster_gives_the_in_process_scores(
    cluster: LocalCluster,
    settings: Settings,
    fake_model: FakeStaticModel,
    gender_set: Fixture,
    tmp_path: Path,
) -> None:
    address = cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:")
    folder, samples = gender_set
    script(fake_model, samples, GENDER_ANSWERS)
    summary = await run(
        settings, [str(folder)], tmp_path / "out", scheduler=address, shard_size=4, concurrency=4
    )
    assert fake_model.audio_requests == 18
    assert summary.counters.calls == 18
    assert [entry["score"] for entry in summary.scores] == pytest.approx([HAND_MACRO_F1] * 3)
    rows = read_rows(tmp_path / "out")
    assert len(rows) == 18 and not any(row["cached"] for row in rows)
    run_json = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run_json["options"]["scheduler"] == address

    fake_model.reset()
    again = await run(settings, [str(folder)], tmp_path / "again", scheduler=address, shard_size=4)
    assert fake_model.requests == 0  # every call came from the shared cache
    assert again.counters.cached == 18
    assert [e["score"] for e in again.scores] == [e["score"] for e in summary.scores]


async def test_an_unreachable_scheduler_is_one_clear_error(
    settings: Settings, gender_set: Fixture, tmp_path: Path
) -> None:
    address = f"tcp://127.0.0.1:{unused_port()}"
    with pytest.raises(ConfigError, match=f"cannot reach the Dask scheduler at {address}"):
        await run(
            settings,
            [str(gender_set[0])],
            tmp_path / "out",
            scheduler=address,
            scheduler_timeout_s=1.0,
        )
    assert not (tmp_path / "out").exists()


async def test_tokens_and_cost_come_back_from_the_workers_per_model(
    cluster: LocalCluster, settings: Settings, gender_set: Fixture, tmp_path: Path
) -> None:
    with FakeOpenAI().serve() as server:
        config = models_yaml(tmp_path / "usage.yaml", server.base_url)
        summary = await run(
            settings.model_copy(update={"models_config": config}),
            [str(gender_set[0])],
            tmp_path / "out",
            models=("priced", "silent"),
            prompts=1,
            scheduler=cluster.scheduler_address,
            shard_size=2,
        )
    run_json = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run_json["usage_by_model"]["priced"]["calls_with_usage"] == SAMPLES
    assert run_json["usage_by_model"]["priced"]["cost_usd"] == pytest.approx(SAMPLES * CALL_COST)
    assert run_json["usage_by_model"]["silent"]["cost_usd"] is None
    assert summary.by_model["silent"].calls == SAMPLES
    assert run_json["cost_usd"] == pytest.approx(SAMPLES * CALL_COST)
