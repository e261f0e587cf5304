"""The ``plantain`` command: thin commands over the core (requests, engines, generation).

Engine code (torch, diffusers) is imported by the commands that run engines, through
:func:`engine_registry`: ``run``, ``tasks``, ``generate --server`` and ``--help`` start without it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from plantain import __version__
from plantain.cli import apps as cli_apps
from plantain.cli import bench as cli_bench
from plantain.cli import cluster as cli_cluster
from plantain.cli import remote as cli_remote
from plantain.cli import verify as cli_verify
from plantain.cli.outputs import output_paths, pick_format
from plantain.cli.progress import StepBar
from plantain.errors import PlantainError
from plantain.imaging.sizes import ASPECT_RATIOS, TIERS
from plantain.limits import Limits
from plantain.settings import Settings, load_settings
from plantain.storage.marks import SERIAL_BITS
from plantain.types import ImageRequest, ImageResult, InputImage

if TYPE_CHECKING:
    from plantain.engines.base import Engine
    from plantain.engines.registry import EngineRegistry
    from plantain.provenance.policy import Stamper

RANDOM_WEIGHTS_NOTE = "note: engine {name} has random weights, so its images are noise, not pictures"


class PlantainGroup(click.Group):
    """Turns every PlantainError into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PlantainError as exc:
            raise click.ClickException(exc.message) from None


@click.group(cls=PlantainGroup)
@click.version_option(__version__, prog_name="plantain")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PLANTAIN_DATA_DIR",
    help="Where Plantain keeps its files (default: ~/.local/share/plantain).",
)
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None) -> None:
    """Self-hosted image generation and editing with open-weight models."""
    ctx.obj = load_settings(**({"data_dir": data_dir} if data_dir else {}))


def engine_registry(settings: Settings) -> EngineRegistry:
    """The engines, for the commands that run them (this import is what loads torch)."""
    from plantain.engines.registry import EngineRegistry

    return EngineRegistry(settings)


def request_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by generate and edit."""
    options = [
        click.option(
            "--engine", "-e", help="Engine to run (see 'plantain engines'); default: flux2-klein-4b."
        ),
        click.option("--aspect-ratio", "-a", help=f"One of {', '.join(ASPECT_RATIOS)}."),
        click.option("--size", "-s", default="1K", show_default=True, help=f"Size tier: {', '.join(TIERS)}."),
        click.option(
            "-n", "num_images", type=int, default=1, show_default=True, help="Images to make (1-10)."
        ),
        click.option("--seed", type=int, help="Seed for image 1 (image k uses seed+k-1); random if unset."),
        click.option(
            "--format", "-f", "output_format", help="png, jpeg, webp or avif (default: from -o, else png)."
        ),
        click.option(
            "--quality", "output_quality", type=int, help="JPEG/WebP/AVIF quality, 0-100 (PNG is lossless)."
        ),
        click.option(
            "--background",
            type=click.Choice(["auto", "opaque", "transparent"], case_sensitive=False),
            metavar="TEXT",
            help="auto, opaque, or transparent: a plain background keyed out (png, webp, avif).",
        ),
        click.option("--steps", type=int, help="Denoising steps (default: the checkpoint's preset)."),
        click.option("--guidance", type=float, help="Guidance scale (default: the checkpoint's preset)."),
        click.option("--preset", help="A named preset of the engine (plantain engines lists them)."),
        click.option(
            "--lora",
            "loras",
            multiple=True,
            callback=_parse_loras,
            metavar="NAME[=SCALE]",
            help="A LoRA from the engine's allow-list (setting loras), at SCALE (repeat for several).",
        ),
        click.option(
            "--weights", type=click.Path(path_type=Path), help="Local checkpoint directory for the engine."
        ),
        click.option("--output", "-o", type=click.Path(path_type=Path), help="Output file or directory."),
    ]
    command = cli_remote.server_options(
        "Send the request to the Plantain server at URL instead of running the engine here."
    )(command)
    for option in reversed(options):
        command = option(command)
    return command


def _parse_loras(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> list[dict[str, Any]]:
    """``--lora style=0.8`` -> ``{"name": "style", "scale": 0.8}`` (no ``=``: the allow-list's scale)."""
    loras = []
    for value in values:
        name, equals, scale = value.partition("=")
        try:
            loras.append({"name": name, "scale": float(scale) if equals else None})
        except ValueError:
            raise click.BadParameter(f"{value!r}: SCALE must be a number, as in style=0.8") from None
    return loras


@cli.command()
@click.argument("prompt")
@request_options
@click.pass_obj
def generate(settings: Settings, /, prompt: str, **options: Any) -> None:
    """Make images from PROMPT."""
    _make_images(settings, prompt, [], options)


@cli.command()
@click.argument("instruction")
@click.option(
    "--image",
    "-i",
    "images",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Input image (repeat for several: fusion).",
)
@request_options
@click.pass_obj
def edit(settings: Settings, /, instruction: str, images: tuple[Path, ...], **options: Any) -> None:
    """Edit or fuse input images following INSTRUCTION."""
    _make_images(settings, instruction, [_read_input(path) for path in images], options)


def _make_images(settings: Settings, prompt: str, images: list[InputImage], options: dict[str, Any]) -> None:
    server, api_key = options.pop("server"), options.pop("api_key")
    if server:
        cli_remote.make_remote(server, api_key, prompt, [image.data for image in images], options)
        return
    output: Path | None = options.pop("output")
    weights: Path | None = options.pop("weights")
    output_format = pick_format(options.pop("output_format"), output)
    engine_name = options.pop("engine") or settings.default_engine
    if weights is not None:
        settings.weights[engine_name] = weights
    request = ImageRequest.create(
        prompt=prompt,
        images=images,
        output_format=output_format,
        background=options.pop("background") or "auto",
        engine=engine_name,
        options={
            "steps": options.pop("steps"),
            "guidance": options.pop("guidance"),
            "preset": options.pop("preset"),
        },
        **options,
    )
    engine = engine_registry(settings).get(engine_name)
    result = _run_with_progress(request, engine)
    seeds = [image.seed for image in result.images]
    for path, image in zip(output_paths(output, seeds, output_format), result.images, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image.data)
        click.echo(str(path))


def _run_with_progress(request: ImageRequest, engine: Engine) -> ImageResult:
    from plantain.generation import execute, prepare

    limits = Limits.from_settings(engine.settings)  # the CLI's own settings: its registry's
    job = prepare(request, engine, limits)  # bad input is refused before any weights load
    if engine.random_weights:
        click.echo(RANDOM_WEIGHTS_NOTE.format(name=engine.name), err=True)
    if not engine.loaded:
        click.echo(f"loading {engine.name}…", err=True)
        engine.load()
    stamper = _local_stamper(request, engine, len(job.seeds))
    with StepBar(engine.name) as bar:
        result = execute(request, job, engine, on_step=bar.update, stamper=stamper)
    first = result.images[0]
    click.echo(
        f"{engine.name}: {len(result.images)} image(s) {first.width}x{first.height}, "
        f"seed {first.seed}, {result.steps} steps in {result.seconds:.2f} s",
        err=True,
    )
    if result.upscaled is not None:
        click.echo(f"{engine.name}: {result.upscaled.describe()}", err=True)
    return result


def _local_stamper(request: ImageRequest, engine: Engine, count: int) -> Stamper:
    """The provenance a server would add (settings ``watermark``, ``content_credentials``); the
    serials are random, as no task database records them."""
    from plantain.provenance.policy import ProvenancePolicy

    serials = [secrets.randbits(SERIAL_BITS) for _ in range(count)]
    return ProvenancePolicy(engine.settings).stamper(
        request, model=engine.name, engine=engine.name, serials=serials
    )


def _read_input(path: Path) -> InputImage:
    try:
        return InputImage(data=path.read_bytes(), label=f"input image {path}")
    except OSError as exc:
        raise click.ClickException(f"cannot read input image {path}: {exc.strerror or exc}") from None


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def engines(settings: Settings, as_json: bool) -> None:
    """List engines, their capabilities and weights status."""
    rows = [engine.describe() for engine in engine_registry(settings).all()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        default = " (default)" if row["name"] == settings.default_engine else ""
        weights = _weights_label(row)
        click.echo(f"{row['name']}{default} — {row['description']}")
        click.echo(
            f"    tasks: {', '.join(row['tasks'])}; inputs: {_inputs_label(row['max_input_images'])}; "
            f"up to {row['max_megapixels']} MP, ratios to {row['max_aspect']:g}:1; "
            f"batchable: {'yes' if row['batchable'] else 'no'}; "
            f"preset: {row['steps']} steps, guidance {row['guidance']:g}"
        )
        click.echo(f"    pipeline: {row['pipeline']}; weights: {weights} ({row['location']})")
        for line in _card_lines(row):
            click.echo(f"    {line}")
        if "route" in row:
            click.echo(f"    route: {' -> '.join(row['route'])} (tried in this order)")


def _card_lines(row: dict[str, Any]) -> list[str]:
    """The card's licence, sizes, presets and LoRAs (engines/cards.py), one line each."""
    from plantain.engines.cards import tier_line

    lines = []
    licence = row.get("licence")
    if licence:
        use = "commercial use allowed" if licence["commercial_use"] else "NON-COMMERCIAL"
        gate = "" if licence["accepted"] else f"; refused until accept_licences lists {licence['id']!r}"
        lines.append(f"licence: {licence['name']} ({use}){gate}")
    if "tiers" in row:
        lines.append(f"sizes at 1:1: {tier_line(row['tiers'])}")
    for name, preset in row.get("presets", {}).items():
        loras = f", LoRA {', '.join(preset['loras'])}" if preset["loras"] else ""
        lines.append(f"preset {name}: {preset['steps']} steps, guidance {preset['guidance']:g}{loras}")
    if row.get("loras"):
        lines.append(f"LoRAs: {', '.join(row['loras'])}")
    if row.get("step_cache") is not None:
        lines.append(f"step cache: first-block cache at threshold {row['step_cache']:g}")
    return lines


def _inputs_label(count: int) -> str:
    return f"up to {count}" if count else "none"


def _weights_label(row: dict[str, Any]) -> str:
    if row["weights"] in ("present", "remote"):
        return str(row["weights"])
    return "built on first use" if row["buildable"] else "missing"


@cli.command()
@click.option(
    "--engine",
    "-e",
    "engines",
    multiple=True,
    help="Engine to load at start and serve by default (repeat to load several).",
)
@click.option("--host", help="Address to listen on (default: 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default: 8000).")
@click.option("--allow-no-key", is_flag=True, help="Serve a non-loopback address without API keys.")
@click.option(
    "--tiny-if-missing",
    is_flag=True,
    help="Serve the random-weight tiny engine, and say so, when the default engine has no weights.",
)
@click.option(
    "--no-worker",
    is_flag=True,
    help="Front door only: take requests into the shared store (database_url) and leave running "
    "them to `plantain worker` processes; loads no weights.",
)
@click.pass_obj
def serve(
    settings: Settings,
    engines: tuple[str, ...],
    host: str | None,
    port: int | None,
    allow_no_key: bool,
    tiny_if_missing: bool,
    no_worker: bool,
) -> None:
    """Serve the Gemini and OpenAI image APIs over HTTP."""

    from plantain.server.app import create_app, serve_app

    updates: dict[str, Any] = {"host": host or settings.host, "port": settings.port if port is None else port}
    if no_worker:
        updates["serve_worker"] = False
    if engines:
        updates |= {"default_engine": engines[0], "serve_engines": list(engines)}
    elif tiny_if_missing:
        updates |= _tiny_if_missing(settings)
    settings = settings.model_copy(update=updates)
    registry = engine_registry(settings)
    for name in settings.serve_engines or [settings.default_engine]:
        registry.get(name)  # an unknown engine fails here, before the port opens
    check_exposure(settings.host, bool(settings.api_keys), allow_no_key)
    url = f"http://{settings.host}:{settings.port}"
    click.echo(
        f"serving on {url} (engines load in the background; GET /readyz says when they are ready)\n"
        f"open {url}/ in a browser: the playground, and the arena at {url}/arena",
        err=True,
    )
    serve_app(create_app(settings, registry), settings)


def _tiny_if_missing(settings: Settings) -> dict[str, Any]:
    """Settings that serve the tiny engine, said on stderr, when the default engine has no weights."""
    status = engine_registry(settings).get().weights_status()
    if status.present:
        return {}
    click.echo(
        f"No weights for {settings.default_engine} ({status.location}); "
        "serving the random-weight 'tiny' engine, whose images are noise. "
        f"For real images: plantain pull {settings.default_engine}",
        err=True,
    )
    return {"default_engine": "tiny", "serve_engines": ["tiny"]}


def check_exposure(host: str, has_keys: bool, allow_no_key: bool) -> None:
    """Refuse to serve a network address without API keys unless asked to."""
    loopback = host in {"localhost", "::1"} or host.startswith("127.")
    if not loopback and not has_keys and not allow_no_key:
        raise click.ClickException(
            f"refusing to serve {host} without API keys: set PLANTAIN_API_KEYS (a JSON list), "
            "or pass --allow-no-key to serve it openly"
        )


@cli.command(name="pull")
@click.argument("engine_name", metavar="ENGINE")
@click.pass_obj
def pull_command(settings: Settings, engine_name: str) -> None:
    """Download ENGINE's checkpoint into the Hugging Face cache."""
    from plantain.engines.loading import pull

    engine = engine_registry(settings).get(engine_name)
    if engine.source.builder is not None:
        engine.load()
        click.echo(f"{engine.name} is built locally, nothing to download: {engine.source.local_dir}")
        return
    click.echo(f"downloading {engine.source.repo_id} for {engine.name}…", err=True)
    click.echo(str(pull(engine.source)))
    _pull_loras(engine)


def _pull_loras(engine: Engine) -> None:
    """The engine's LoRAs on the hub (its own, as qwen-image-edit's Lightning, and the setting
    loras'), which the server reads from the hub cache and never downloads itself."""
    from plantain.engines.lora import pull_lora

    for name, source in engine.allowed_loras.items():
        path = pull_lora(source, engine.settings.hub_cache)  # None: a local file, nothing to fetch
        if path is not None:
            click.echo(f"LoRA {name} ({source.source}) for {engine.name}:", err=True)
            click.echo(str(path))


@cli.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("plantain-demo"),
    show_default=True,
    help="Directory for the demo images.",
)
@click.pass_obj
def demo(settings: Settings, output: Path) -> None:
    """Generate an image, then edit it (a round trip).

    Runs on the default engine, or on the random-weight tiny engine when its weights are missing.
    """
    registry = engine_registry(settings)
    engine = registry.get()
    status = engine.weights_status()
    if not status.present:
        click.echo(
            f"No weights for {engine.name} ({status.location}); running the demo "
            f"on the random-weight 'tiny' engine. For real images: plantain pull {engine.name}",
            err=True,
        )
        engine = registry.get("tiny")
    first = _demo_step(engine, "a red bicycle leaning on a sunlit wall", [], output / "generated.png")
    image = InputImage(data=first.read_bytes(), label=f"input image {first}")
    _demo_step(engine, "make it night, with a full moon", [image], output / "edited.png")


def _demo_step(engine: Engine, prompt: str, images: list[InputImage], path: Path) -> Path:
    request = ImageRequest.create(prompt=prompt, images=images, engine=engine.name, seed=0)
    result = _run_with_progress(request, engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(result.images[0].data)
    click.echo(str(path))
    return path


@cli.command(name="webhook-secret")
@click.pass_obj
def webhook_secret_command(settings: Settings) -> None:
    """Print the secret webhooks are signed with (whsec_…), to configure receivers.

    It is PLANTAIN_WEBHOOK_SECRET when set; otherwise the one kept in the data directory, generated
    there now if the server has not made one yet.
    """
    from plantain.webhooks.delivery import webhook_secret

    click.echo(webhook_secret(settings))


cli.add_command(cli_remote.run)
cli.add_command(cli_remote.tasks)
cli.add_command(cli_apps.app)
cli.add_command(cli_verify.verify)
cli.add_command(cli_bench.bench)
cli.add_command(cli_cluster.worker)
cli.add_command(cli_cluster.migrate_db)


def main() -> None:
    cli(prog_name="plantain")


if __name__ == "__main__":  # pragma: no cover
    main()
