"""Model-style answers for the answer parser's table tests, with the exact entries expected.

Written the way real chat models answer a "list more items" prompt: GPT-style preambles and
bold numbered lists with en-dash descriptions, Claude-style "Here are..." with closing offers,
Gemini-style ``*   **Name:**`` bullets, JSON in fences or wrapped in objects, truncated
JSON, tables, prose, sub-headings, and names that stress cleaning (hyphens, commas,
apostrophes, accents, non-Latin scripts). ``dropped`` is checked when not None.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.parser import AnswerFormat


@dataclass(frozen=True)
class Case:
    label: str
    answer: str
    entries: tuple[str, ...]
    format: AnswerFormat
    dropped: int | None = 0


CASES: list[Case] = [
    # --- JSON ---------------------------------------------------------------------------
    Case(
        "json array, compact",
        '["São Paulo", "Rio de Janeiro", "Belo Horizonte", "Porto Alegre"]',
        ("São Paulo", "Rio de Janeiro", "Belo Horizonte", "Porto Alegre"),
        AnswerFormat.JSON,
    ),
    Case(
        "json object wrapping a list, as the prompt asks",
        '{"entries": ["Saint-Étienne", "Aix-en-Provence", "Clermont-Ferrand", "Washington, D.C."]}',
        ("Saint-Étienne", "Aix-en-Provence", "Clermont-Ferrand", "Washington, D.C."),
        AnswerFormat.JSON,
    ),
    Case(
        "json in a fenced block after a GPT preamble",
        "Sure! Here's the JSON with 4 more museums:\n\n"
        "```json\n"
        "{\n"
        '  "entries": [\n'
        '    "Musée Rodin",\n'
        '    "Musée de l\'Orangerie",\n'
        '    "Musée Picasso",\n'
        '    "Centre Pompidou"\n'
        "  ]\n"
        "}\n"
        "```\n\n"
        "Let me know if you need more!",
        ("Musée Rodin", "Musée de l'Orangerie", "Musée Picasso", "Centre Pompidou"),
        AnswerFormat.JSON,
    ),
    Case(
        "json in a bare fence",
        '```\n["Köln", "Düsseldorf", "Münster"]\n```',
        ("Köln", "Düsseldorf", "Münster"),
        AnswerFormat.JSON,
    ),
    Case(
        "json with escapes (ensure_ascii output)",
        r'{"entries": ["Mus\u00e9e d\u2019Orsay", "\u0141\u00f3d\u017a", "The \"Gherkin\"", "Caf\u00e9 de Flore"]}',
        ("Musée d’Orsay", "Łódź", 'The "Gherkin"', "Café de Flore"),
        AnswerFormat.JSON,
    ),
    Case(
        "json object with a list of objects (name, description)",
        '{"museums": [\n'
        '  {"name": "Louvre", "description": "The world\'s largest art museum, home of the Mona Lisa."},\n'
        '  {"name": "Musée d\'Orsay", "description": "Impressionist masterpieces in a former railway station."},\n'
        '  {"name": "Musée Rodin", "description": "Sculptures, including The Thinker."}\n'
        "]}",
        ("Louvre", "Musée d'Orsay", "Musée Rodin"),
        AnswerFormat.JSON,
    ),
    Case(
        "json objects keyed by title, name after the description, and no name key at all",
        '[{"rank": 1, "title": "Sainte-Chapelle", "tags": ["gothic", "stained glass"]},'
        ' {"description": "A domed mausoleum", "name": "Panthéon"},'
        ' {"museum": "Musée Carnavalet", "arrondissement": "3rd"}]',
        ("Sainte-Chapelle", "Panthéon", "Musée Carnavalet"),
        AnswerFormat.JSON,
    ),
    Case(
        "json nested wrappers; a list of sources is not entries",
        '{"data": {"cities": ["Porto", "Braga", "Coimbra"]}, "sources": ["en.wikipedia.org"]}',
        ("Porto", "Braga", "Coimbra"),
        AnswerFormat.JSON,
    ),
    Case(
        "json with non-string elements, which are dropped",
        '["Graz", 42, null, "Linz", true]',
        ("Graz", "Linz"),
        AnswerFormat.JSON,
        dropped=3,
    ),
    Case(
        "python-style single-quoted list",
        "['Łódź', 'Kraków', 'Wrocław', \"Bielsko-Biała\"]",
        ("Łódź", "Kraków", "Wrocław", "Bielsko-Biała"),
        AnswerFormat.JSON,
    ),
    Case(
        "json on one line after an inline preamble",
        'Here you go: ["Musée Cognacq-Jay", "Musée Nissim de Camondo", "Musée Guimet"]',
        ("Musée Cognacq-Jay", "Musée Nissim de Camondo", "Musée Guimet"),
        AnswerFormat.JSON,
    ),
    Case(
        "json followed by a note in list form, which is commentary",
        '["Salzburg", "Innsbruck", "Klagenfurt"]\n\nNote:\n- Vienna and Graz were already in your list.',
        ("Salzburg", "Innsbruck", "Klagenfurt"),
        AnswerFormat.JSON,
    ),
    Case(
        "json in non-Latin scripts",
        '{"entries": ["Θεσσαλονίκη", "Санкт-Петербург", "東京スカイツリー", "서울", "القاهرة"]}',
        ("Θεσσαλονίκη", "Санкт-Петербург", "東京スカイツリー", "서울", "القاهرة"),
        AnswerFormat.JSON,
    ),
    Case(
        "truncated json array: the partial element is dropped",
        '{"entries": ["Köln", "Düsseldorf", "Dortm',
        ("Köln", "Düsseldorf"),
        AnswerFormat.JSON,
        dropped=1,
    ),
    Case(
        "truncated pretty json inside a fence",
        '```json\n{\n  "entries": [\n    "Bergen",\n    "Trondheim",\n    "Stavan',
        ("Bergen", "Trondheim"),
        AnswerFormat.JSON,
        dropped=1,
    ),
    Case(
        "truncated list of objects after the last name was complete",
        '[{"name": "Louvre", "description": "Art"}, {"name": "Musée d\'Orsay", "description": "Impressionist mas',
        ("Louvre", "Musée d'Orsay"),
        AnswerFormat.JSON,
    ),
    Case(
        "truncated list of objects before the name: the object is dropped",
        '[{"name": "Louvre"}, {"description": "A museum of',
        ("Louvre",),
        AnswerFormat.JSON,
        dropped=1,
    ),
    Case(
        "json strings are names whole: parentheses and dashes stay, markdown goes",
        '["**Trieste**", "Frankfurt (Oder)", "Sants - Badal", "Stoke-on-Trent"]',
        ("Trieste", "Frankfurt (Oder)", "Sants - Badal", "Stoke-on-Trent"),
        AnswerFormat.JSON,
    ),
    # --- numbered and bulleted lists -----------------------------------------------------
    Case(
        "GPT numbered list, bold names, en-dash descriptions, closing offer",
        "Here are 5 more museums in Paris that aren't on your list:\n\n"
        "1. **Musée Rodin** – Dedicated to the works of the French sculptor Auguste Rodin.\n"
        "2. **Musée de l'Orangerie** – Home to Monet's famous *Water Lilies* murals.\n"
        "3. **Musée Picasso** – Features an extensive collection of Picasso's works.\n"
        "4. **Musée Jacquemart-André** – A private collection in a 19th-century mansion.\n"
        "5. **Musée Carnavalet** – Dedicated to the history of Paris.\n\n"
        "Let me know if you'd like more recommendations or details about any of these museums!",
        (
            "Musée Rodin",
            "Musée de l'Orangerie",
            "Musée Picasso",
            "Musée Jacquemart-André",
            "Musée Carnavalet",
        ),
        AnswerFormat.LIST,
    ),
    Case(
        "Claude-style dash list with a closing offer",
        "Here are 8 more European cities:\n\n"
        "- Saint-Étienne\n"
        "- Aix-en-Provence\n"
        "- Boulogne-Billancourt\n"
        "- Köln (Cologne)\n"
        "- Łódź\n"
        "- Kraków\n"
        "- 's-Hertogenbosch\n"
        "- Frankfurt am Main\n\n"
        "I can continue with more cities from other regions if you'd like.",
        (
            "Saint-Étienne",
            "Aix-en-Provence",
            "Boulogne-Billancourt",
            "Köln",
            "Łódź",
            "Kraków",
            "'s-Hertogenbosch",
            "Frankfurt am Main",
        ),
        AnswerFormat.LIST,
    ),
    Case(
        "numbered with colons and parentheses",
        "1. Louvre: the world's largest art museum\n"
        "2. Musée d'Orsay (impressionism)\n"
        "3. Centre Pompidou: modern and contemporary art\n"
        "4. **Musée Guimet** (Asian art)",
        ("Louvre", "Musée d'Orsay", "Centre Pompidou", "Musée Guimet"),
        AnswerFormat.LIST,
    ),
    Case(
        "numbered with parenthesis markers and spaced hyphens",
        "1) Bern - the Swiss capital\n2) Basel - on the Rhine\n3) Lausanne - Olympic capital",
        ("Bern", "Basel", "Lausanne"),
        AnswerFormat.LIST,
    ),
    Case(
        "bullets with em dashes, spaced and unspaced",
        "• Tallinn — Estonia's capital\n• Tartu—a university town\n• Pärnu — summer capital",
        ("Tallinn", "Tartu", "Pärnu"),
        AnswerFormat.LIST,
    ),
    Case(
        "a bold name is the name whole, parenthesis included",
        "- **Halle (Saale)** – a city in Saxony-Anhalt\n- **Kempten (Allgäu)** – Bavaria\n"
        "- Brake (Unterweser)",
        ("Halle (Saale)", "Kempten (Allgäu)", "Brake"),
        AnswerFormat.LIST,
    ),
    Case(
        "asterisk bullets with bold names",
        "* **Köln** — the cathedral city\n* **München** — Bavaria's capital\n* **Nürnberg**",
        ("Köln", "München", "Nürnberg"),
        AnswerFormat.LIST,
    ),
    Case(
        "Gemini-style bullets with bold labels ending in a colon",
        "Okay, here are some more museums:\n\n"
        "*   **Musée Marmottan Monet:** The largest collection of Monet's works.\n"
        "*   **Musée Zadkine:** The former home and studio of Ossip Zadkine.\n"
        "*   **Musée de la Vie romantique:** A small museum in the 9th arrondissement.",
        ("Musée Marmottan Monet", "Musée Zadkine", "Musée de la Vie romantique"),
        AnswerFormat.LIST,
    ),
    Case(
        "markdown links",
        "1. [Musée Rodin](https://www.musee-rodin.fr/) – sculpture\n"
        "2. [Musée du quai Branly](https://www.quaibranly.fr/en/) – world cultures\n"
        "3. The [Petit Palais](https://www.petitpalais.paris.fr/) fine arts museum",
        ("Musée Rodin", "Musée du quai Branly", "The Petit Palais fine arts museum"),
        AnswerFormat.LIST,
    ),
    Case(
        "italic and quoted titles",
        '1. *Moby-Dick* by Herman Melville\n2. "The Starry Night" – Vincent van Gogh\n3. “Guernica” (Picasso)',
        ("Moby-Dick", "The Starry Night", "Guernica"),
        AnswerFormat.LIST,
    ),
    Case(
        "items with citations and trailing full stops",
        "1. Louvre[1]\n2. Paris.\n3. Washington, D.C.\n4. St. Louis",
        ("Louvre", "Paris", "Washington, D.C.", "St. Louis"),
        AnswerFormat.LIST,
    ),
    Case(
        "markdown headings are sub-headings, not entries",
        "### Northern Europe\n1. Oslo\n2. Stockholm\n\n### Southern Europe\n3. Lisbon\n4. Valletta",
        ("Oslo", "Stockholm", "Lisbon", "Valletta"),
        AnswerFormat.LIST,
    ),
    Case(
        "bold lines are sub-headings, not entries",
        "Here are more museums, by theme:\n\n"
        "**Art museums**\n- Musée d'Orsay\n- Musée de l'Orangerie\n\n"
        "**History museums**\n- Musée Carnavalet\n- Musée de l'Armée",
        ("Musée d'Orsay", "Musée de l'Orangerie", "Musée Carnavalet", "Musée de l'Armée"),
        AnswerFormat.LIST,
    ),
    Case(
        "nested list under heading items ending in a colon",
        "- **Art Museums:**\n  - Musée Marmottan Monet\n  - Musée Zadkine\n"
        "- **Science Museums:**\n  - Cité des Sciences et de l'Industrie\n  - Palais de la Découverte",
        (
            "Musée Marmottan Monet",
            "Musée Zadkine",
            "Cité des Sciences et de l'Industrie",
            "Palais de la Découverte",
        ),
        AnswerFormat.LIST,
    ),
    Case(
        "nested details under entries are not entries",
        "1. **Sainte-Chapelle**\n   - Location: Île de la Cité\n   - **Known for:** its stained glass\n"
        "2. **Panthéon**\n   - Location: Latin Quarter\n   - Burial place of Voltaire and Rousseau.",
        ("Sainte-Chapelle", "Panthéon"),
        AnswerFormat.LIST,
    ),
    Case(
        "list items that are not names are dropped and counted",
        "1. Louvre\n2. https://www.louvre.fr\n3. 1889\n4. Many museums are free on the first Sunday of each month.\n5. Orsay",
        ("Louvre", "Orsay"),
        AnswerFormat.LIST,
        dropped=3,
    ),
    Case(
        "a repeated entry is kept: dedup is another stage's job",
        "1. Louvre\n2. Orsay\n3. Louvre",
        ("Louvre", "Orsay", "Louvre"),
        AnswerFormat.LIST,
    ),
    Case(
        "a truncated list keeps its last line as it is",
        "1. Leipzig\n2. Dresden\n3. Chemn",
        ("Leipzig", "Dresden", "Chemn"),
        AnswerFormat.LIST,
    ),
    Case(
        "CRLF line endings and checkboxes",
        "- [ ] Bern\r\n- [x] Basel\r\n- [ ] Zürich\r\n",
        ("Bern", "Basel", "Zürich"),
        AnswerFormat.LIST,
    ),
    Case(
        "HTML-like text is kept as plain text",
        "- <b>Louvre</b>\n- Musée d'Orsay & Jardin\n- <script>alert(1)</script>",
        ("<b>Louvre</b>", "Musée d'Orsay & Jardin", "<script>alert(1)</script>"),
        AnswerFormat.LIST,
    ),
    # --- tables ---------------------------------------------------------------------------
    Case(
        "markdown table: header and separator skipped, rank column skipped",
        "| # | City | Country |\n|---|------|---------|\n| 1 | São Paulo | Brazil |\n"
        "| 2 | Buenos Aires | Argentina |\n| 3 | **Bogotá** | Colombia |",
        ("São Paulo", "Buenos Aires", "Bogotá"),
        AnswerFormat.TABLE,
    ),
    # --- bare lines -----------------------------------------------------------------------
    Case(
        "one name per line keeps commas and abbreviations",
        "Paris\nLyon\nWashington, D.C.\nSt. Louis\nSão Paulo\nSarajevo, Bosnia and Herzegovina",
        (
            "Paris",
            "Lyon",
            "Washington, D.C.",
            "St. Louis",
            "São Paulo",
            "Sarajevo, Bosnia and Herzegovina",
        ),
        AnswerFormat.LINES,
    ),
    Case(
        "bare lines after a preamble without a colon, and a closing line",
        "Here are some more German cities\n\nLeipzig\nDresden\nHannover\nBielefeld\n\nHope this helps!",
        ("Leipzig", "Dresden", "Hannover", "Bielefeld"),
        AnswerFormat.LINES,
    ),
    Case(
        "bare lines with descriptions",
        "Louvre – the world's largest art museum\nMusée Rodin - sculpture\nMusée Guimet: Asian art\n"
        "**Musée Cernuschi** (Asian art)",
        ("Louvre", "Musée Rodin", "Musée Guimet", "Musée Cernuschi"),
        AnswerFormat.LINES,
    ),
    Case(
        "emoji used as bullets",
        "🏛️ Louvre\n🗼 Eiffel Tower\n⛪ Notre-Dame de Paris",
        ("Louvre", "Eiffel Tower", "Notre-Dame de Paris"),
        AnswerFormat.LINES,
    ),
    # --- prose ----------------------------------------------------------------------------
    Case(
        "a sentence enumerating names",
        "Some cities are Paris, Lyon, and Marseille.",
        ("Paris", "Lyon", "Marseille"),
        AnswerFormat.PROSE,
    ),
    Case(
        "a one-item sentence",
        "One more is Galdakao.",
        ("Galdakao",),
        AnswerFormat.PROSE,
    ),
    Case(
        "a comma-separated line as the whole answer",
        "Toulouse, Nice, Nantes, Strasbourg, Montpellier, Bordeaux, Lille",
        ("Toulouse", "Nice", "Nantes", "Strasbourg", "Montpellier", "Bordeaux", "Lille"),
        AnswerFormat.PROSE,
    ),
    Case(
        "a preamble with a colon on the same line as the names",
        "Here are some French cities: Paris, Lyon and Marseille.",
        ("Paris", "Lyon", "Marseille"),
        AnswerFormat.PROSE,
    ),
    Case(
        "commentary sentences around an enumeration in one paragraph",
        "Sure! Other notable French cities include Toulouse, Nice, Nantes, and Strasbourg. "
        "Let me know if you need more.",
        ("Toulouse", "Nice", "Nantes", "Strasbourg"),
        AnswerFormat.PROSE,
    ),
    Case(
        "paragraphs of prose",
        "Certainly. Here are a few more museums:\n\n"
        "Musée Rodin, Musée Picasso, and the Centre Pompidou are all worth a visit.\n\n"
        "Other options include the Orangerie, Carnavalet, and Cluny (the Musée de Cluny).",
        ("Musée Rodin", "Musée Picasso", "Centre Pompidou", "Orangerie", "Carnavalet", "Cluny"),
        AnswerFormat.PROSE,
    ),
    # --- nothing usable -------------------------------------------------------------------
    Case("empty answer", "", (), AnswerFormat.EMPTY),
    Case("blank answer", " \n\n\t \n", (), AnswerFormat.EMPTY),
    Case("refusal", "I'm sorry, I can't help with that.", (), AnswerFormat.GARBAGE),
    Case(
        "refusal with reasons",
        "As an AI language model, I don't have access to real-time data.\n\n"
        "However, I can suggest checking an official tourism website.",
        (),
        AnswerFormat.GARBAGE,
    ),
    Case("json error object", '{"error": "I cannot list more items."}', (), AnswerFormat.GARBAGE),
    Case("explicitly empty json list", '{"entries": []}', (), AnswerFormat.EMPTY_LIST),
    Case(
        "explicitly empty list in a fence with an explanation",
        "```json\n[]\n```\n\nI couldn't find any more items that aren't already on your list.",
        (),
        AnswerFormat.EMPTY_LIST,
    ),
]
