"""Article values for the rendering and message tests, built by hand (not by the parser).

`seed_shaped_article()` has the shape of the publisher's plain-text export: a Dutch article
of about 6 KB with long paragraphs, short subheadings, curly quotes, € and é, and name/role
signature lines. The text is written for these tests. `wide_article()` holds the blocks that
usually break a 375 px layout: a long URL, a long code line, a table and a wide image.
"""

from __future__ import annotations

import html
from pathlib import Path

from newsletter.config import Config, load_config
from newsletter.content.article import Article, Block

PARAGRAPHS = [
    "Groningen wil de komende tien jaar uitgroeien tot een van de belangrijkste plekken in "
    "Europa voor het ontwerpen van energiezuinige chips. Dat is de ambitie van het nieuwe "
    "consortium Noordelijk Halfgeleider Netwerk, waarin twaalf bedrijven, twee hogescholen en "
    "de universiteit samenwerken. “We hoeven niet de grootste te zijn, wel de slimste in een "
    "niche die ertoe doet”, zegt initiatiefnemer Marieke Dijkstra. Het consortium krijgt de "
    "komende vier jaar € 14,5 miljoen uit het regionale investeringsfonds.",
    "Het idee is niet nieuw, maar de timing wel. Europese fabrikanten zoeken naarstig naar "
    "ontwerpkennis dicht bij huis, nu de vraag naar chips voor sensoren, medische apparatuur "
    "en landbouwrobots sneller groeit dan de productiecapaciteit. “Een café vol ingenieurs is "
    "nog geen ecosysteem”, waarschuwt Dijkstra. “Je hebt opdrachtgevers nodig die durven te "
    "experimenteren, en opleidingen die studenten al in het tweede jaar aan echte projecten "
    "laten werken.”",
    "Open ontwerpen als vliegwiel",
    "Opvallend is de keuze voor open hardware. Het consortium publiceert de basisbouwstenen "
    "van zijn ontwerpen onder een open licentie, zodat kleine bedrijven er zonder dure "
    "licenties mee kunnen beginnen. Volgens Dijkstra is dat geen liefdadigheid maar strategie: "
    "“Hoe meer partijen op dezelfde basis bouwen, hoe sneller fouten boven water komen en hoe "
    "aantrekkelijker het wordt om hier te werken.” De eerste testchip, een sensorcontroller "
    "die met een tiende van het gebruikelijke vermogen toekan, rolt volgend voorjaar van de "
    "band bij een partner in Leuven.",
    "Voor de deelnemende mkb-bedrijven betekent dat een kortere weg naar een eigen product. "
    "Jeroen Bakker, directeur van een bedrijf dat meetapparatuur voor de zuivelindustrie "
    "maakt, vertelt dat hij eerder twee jaar en ruim € 400.000 kwijt was aan een maatwerkchip. "
    "“Met gedeelde bouwstenen en een gezamenlijke testomgeving verwachten we dat te halveren. "
    "Dat maakt het verschil tussen wel of niet beginnen.”",
    "Talent vasthouden",
    "De grootste zorg blijft talent. Elk jaar studeren er in het Noorden honderden technici "
    "af, maar een groot deel vertrekt naar de Randstad of naar Eindhoven. Het consortium wil "
    "dat keren met betaalde stages, gedeelde laboratoria en een traineeprogramma waarin "
    "jonge ontwerpers een jaar lang bij drie verschillende bedrijven werken. “Mensen blijven "
    "waar ze iets kunnen leren en waar ze collega’s hebben die hen uitdagen”, zegt Dijkstra. "
    "“Salaris is belangrijk, maar de kwaliteit van het werk is doorslaggevend.”",
    "De hogescholen passen hun curriculum daarop aan. Vanaf volgend studiejaar kunnen "
    "studenten elektrotechniek en technische informatica een minor chipontwerp volgen die "
    "volledig in samenwerking met het bedrijfsleven is opgezet. Docenten komen deels uit de "
    "deelnemende bedrijven, en de eindopdrachten zijn echte vraagstukken van opdrachtgevers "
    "uit de regio, van de haven van Delfzijl tot de akkerbouw in de Veenkoloniën.",
    "Samen sneller schakelen",
    "Of de aanpak werkt, moet de komende jaren blijken. Critici wijzen erop dat eerdere "
    "regionale clusters strandden zodra de subsidie opdroogde. Dijkstra kent die verhalen. "
    "“Daarom bouwen we vanaf dag één aan een verdienmodel: bedrijven betalen voor toegang tot "
    "de testomgeving, en een deel van de opbrengst van licenties vloeit terug naar het "
    "netwerk.” Ze is vooral trots op het tempo waarin partijen elkaar hebben gevonden. “Een "
    "jaar geleden kenden veel van deze ondernemers elkaar niet. Nu delen ze hun roadmaps.”",
    "Het consortium organiseert in maart een open dag voor bedrijven en studenten die willen "
    "aansluiten. Wie niet kan wachten, is welkom bij de maandelijkse ontwerpavond in het "
    "innovatiecentrum aan het Zernikeplein, waar deelnemers laten zien waar ze mee bezig zijn "
    "en waar beginners vragen kunnen stellen aan ervaren ontwerpers. “Iedereen begint ergens”, "
    "zegt Dijkstra. “Het belangrijkste is dat je niet alleen begint.”",
]
HEADINGS = {"Open ontwerpen als vliegwiel", "Talent vasthouden", "Samen sneller schakelen"}
SIGNATURE = ("Marieke Dijkstra - Initiatiefnemer Noordelijk Halfgeleider Netwerk", "Jeroen Bakker - Directeur Bakker Meettechniek")
TITLE = "Groningen zet in op open chipontwerp: “De slimste in een niche die ertoe doet”"
SLUG = "noordelijk-halfgeleider-netwerk-zet-in-op-open-chipontwerp"


def paragraph(text: str) -> Block:
    return Block(kind="paragraph", text=text, html=f"<p>{html.escape(text, quote=False)}</p>")


def heading(text: str) -> Block:
    return Block(kind="heading", text=text, html=f"<h2>{html.escape(text, quote=False)}</h2>")


def seed_shaped_article() -> Article:
    """A Dutch article in the shape of the plain-text export (about 6 KB of text)."""
    blocks = tuple(heading(p) if p in HEADINGS else paragraph(p) for p in PARAGRAPHS)
    return Article(
        slug=SLUG,
        title=TITLE,
        summary="",
        blocks=blocks,
        signature=SIGNATURE,
        publication="Techblad Noord",
        language="nl",
        source="tests/render_fixtures.py",
        format="text",
    )


def wide_article() -> Article:
    """Blocks that overflow a phone screen unless the layout handles them."""
    url = "https://example.nl/" + "een-heel-lang-pad-zonder-spaties/" * 6 + "einde"
    code = "result = compute_the_quarterly_figures(region='Noord', include_forecast=True, currency='EUR', rounding=2)"
    pixel = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
        "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    table = (
        "<table><thead><tr><th>Regio</th><th>Bedrijven</th><th>Investering</th></tr></thead>"
        "<tbody><tr><td>Groningen</td><td>7</td><td>€ 8,1 mln</td></tr>"
        "<tr><td>Friesland</td><td>3</td><td>€ 4,0 mln</td></tr></tbody></table>"
    )
    blocks = (
        paragraph("Een artikel met onderdelen die op een telefoon vaak buiten beeld vallen."),
        Block(kind="paragraph", text=f"Bron: {url}", html=f'<p>Bron: <a href="{url}">{url}</a></p>'),
        Block(kind="code", text=code, html=f"<pre><code>{html.escape(code)}</code></pre>"),
        Block(kind="table", text="Regio | Bedrijven | Investering", html=table),
        Block(kind="image", text="[Afbeelding: grafiek]", html=f'<p><img src="{pixel}" width="900" height="300" alt="grafiek"></p>'),
        paragraph("Woordenmetzeerlangesamenstellingenzoalsarbeidsongeschiktheidsverzekeringsmaatschappijenbestaan."),
    )
    return Article(slug="breed", title="Brede inhoud", summary="Tabellen, code en lange links.", blocks=blocks, language="nl")


def script_article() -> Article:
    """Article text that looks like markup: it must arrive as text."""
    evil = '<script>alert("x")</script> & <b>vet</b> {nl:email}'
    return Article(
        slug="script",
        title='Titel met <b>tags</b> & "quotes"',
        summary=evil,
        blocks=(paragraph(evil),),
        signature=("<i>Ann</i> - Redactie",),
        language="nl",
    )


def make_config(directory: Path, **overrides: object) -> Config:
    """The configuration of an initialised directory, with settings overridden by dotted key."""
    return load_config(directory / "newsletter.toml", overrides=overrides, environ={})
