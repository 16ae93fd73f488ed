#!/usr/bin/env python3
"""Generates Modelgate's labelled PII evaluation corpus (seeded, deterministic).

Writes corpus.jsonl: one {"id", "kind", "text", "spans": [{"type", "start", "end"}]} per line,
offsets in characters. kind is "pii" (at least one value), "clean" (no PII) or "hard_negative"
(no PII, but look-alikes: invalid Luhn/SSN, order numbers, versions, timestamps, capitalised
non-names, product names). Names come from the pools below, written independently of the
engine's embedded lists; a share are deliberately rare ("held out") so PERSON recall is not
measured only on names the engine knows. Run: python3 eval/generate.py
"""
import json
import random
import string
from pathlib import Path

SEED = 20261127
N_PII = 900
N_CLEAN = 150
N_HARD = 250

FIRST = """Olivia Liam Emma Noah Amelia Oliver Sophia Elijah Charlotte James Ava William Isabella
Benjamin Mia Lucas Evelyn Henry Harper Theodore Camila Jack Gianna Levi Abigail Alexander Luna
Jackson Ella Mateo Elizabeth Daniel Sofia Michael Emily Mason Avery Sebastian Mila Ethan Scarlett
Logan Eleanor Owen Madison Samuel Layla Jacob Penelope Asher Aria Aiden Chloe John Grace Joseph
Ellie Wyatt Nora David Hazel Leo Zoey Luke Riley Julian Victoria Hudson Lily Grayson Aurora
Priya Arjun Ananya Rohan Meera Vikram Sanjay Kavya Deepak Lakshmi Wei Jing Hiroshi Yuki Haruto
Sakura Min-jun Seo-yeon Minh Thao Siddharth Fatima Omar Aisha Youssef Layla Karim Zainab Mehmet
Elif Dmitri Anastasia Olga Sergei Katarzyna Piotr Agnieszka Lukas Hannah Jonas Lea Matteo Giulia
Alessandro Chiara Sofia Pablo Lucia Javier Carmen Diego Valentina Joao Beatriz Camille Antoine
Chloé Mathieu Ingrid Lars Freja Mikkel Aino Juha Chinedu Ngozi Kwame Ama Thabo Zanele Wanjiru
Kamau Tesfaye Selam Mamadou Fatou Kofi Abena Emeka Chioma Tunde Folake Ayesha Imran Bilal Sana
Reza Shirin Dariush Yael Noam Tamar Ravi Neha Ankit Pooja""".split()

# Given names and surnames chosen to be absent from the engine's lists (rare or regional).
HELD_OUT_FIRST = """Oluwadamilare Thandeka Xiadani Brynjar Eluned Tiihu Ngaio Zdravko Yeshe Kaveri
Anneliese Ottoline Casimir Evander Isolde Leocadia Radomir Svanhildur Tupac Yaretzi Itzamna Makena
Nkiruka Obiageli Simisola Temperance Wolfram Zebedee Bartholomew Cressida Desdemona Eustace Fenella
Godfrey Hyacinth Ignatius Jocasta Lysander Marigold Peregrine Quentin Rosalind Sylvester Theodora
Ulysses Wilhelmina Xanthe Yolande Zephyr Ayodeji Chidinma Ebunoluwa Gugulethu Hlengiwe Kagiso
Lindani Mbali Nonhlanhla Phumzile Sibongile Themba Unathi Vuyo Zodwa Anahí Citlalli Dulce Itzel
Nayeli Xóchitl Yatzil Kenji Tsubasa Hotaru Kaede Shion Nagisa Seiji Haneul Bitna Dahye Eunbi Gyuri
Hwayoung Jisu Kyungmin Saoirse Ruairí Aoibheann Tadhgín Bláthnaid Fionnuala Ffraid Gwenllian
Iolo Meinir Tegwen""".split()

LAST = """Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
Patel Sharma Gupta Reddy Iyer Chen Wang Li Zhang Liu Tanaka Suzuki Sato Kim Park Choi Tran Pham
Hassan Ali Khan Ahmed Haddad Yilmaz Kaya Ivanov Petrova Nowak Kowalski Müller Schmidt Schneider
Rossi Russo Bianchi Fernández García Silva Santos Dubois Lefebvre Johansson Nilsen Virtanen
Okafor Okonkwo Mensah Asante Dlamini Ndlovu Mwangi Otieno Tesfaye Diallo Ndiaye Adeyemi Cohen
Levi Friedman Rahman Hosseini""".split()

HELD_OUT_LAST = """Abernethy Quispe Huamani Mamani Condori Ticona Tlacuilo Achterberg Uitdehaag Wojtkiewicz
Szczygieł Przybylski Brzęczyszczykiewicz Vasilakopoulos Papadimitropoulou Xenakis Oyelowo
Nwachukwu Onyekachi Ekwueme Ogunwusi Mbeki Sithebe Mahlaba Tshabangu Kgositsile Moyo Chikwanha
Rakotomalala Andriamanitra Randrianarivelo Tuilagi Faleolo Tupou Kealamakia Nakoa Hohaia
Whitcombe Fothergill Ravenscroft Pemberton Thistlewood Cholmondeley Featherstonehaugh Aldergrove
Blackwood Ashdown Winterbourne Kilbride Ó Súilleabháin Mac Giolla Ní Bhriain Ap Rhys Gruffydd
Llewelyn Vaughan-Thomas Esterházy Szentgyörgyi Kovalainen Ylönen Häkkinen Kjærsgaard Thorvaldsen
Sigurðardóttir Jóhannsdóttir Gunnlaugsson Dharmadasa Wijeratne Kulatunga Balasooriya Tshering
Dorji Wangchuk Lhamo Tsering Batbayar Ganbold Enkhbold Altankhuyag""".split()
# Multi-token surnames above were split by whitespace: keep only single tokens.
HELD_OUT_LAST = [w for w in HELD_OUT_LAST if w not in ("Ó", "Mac", "Ní", "Ap", "Giolla", "Bhriain", "Súilleabháin", "Rhys")]

TITLES = ["Mr.", "Mrs.", "Ms.", "Dr.", "Prof."]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "uni.example.edu", "example.co.uk", "contoso.example"]
COUNTRIES_IBAN = {"DE": 22, "GB": 22, "FR": 27, "ES": 24, "NL": 18, "IT": 27, "BE": 16, "CH": 21, "PL": 28, "SE": 24}

rng = random.Random(SEED)


def pick(xs):
    return rng.choice(xs)


def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(rng.randrange(10))
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    digits.append((10 - total % 10) % 10)
    return "".join(map(str, digits))


def luhn_ok(s):
    total = 0
    for i, c in enumerate(reversed(s)):
        d = int(c)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def credit_card(valid=True):
    prefix, length = pick([("4", 16), ("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("37", 15), ("34", 15), ("6011", 16), ("65", 16), ("35", 16)])
    num = luhn_complete(prefix + "".join(str(rng.randrange(10)) for _ in range(rng.randrange(0, 3))), length)
    if not valid:
        last = (int(num[-1]) + rng.randrange(1, 10)) % 10
        num = num[:-1] + str(last)
    style = rng.random()
    if length == 15 and style < 0.5:
        return f"{num[:4]} {num[4:10]} {num[10:]}" if rng.random() < 0.5 else f"{num[:4]}-{num[4:10]}-{num[10:]}"
    if style < 0.45:
        return " ".join(num[i:i + 4] for i in range(0, len(num), 4))
    if style < 0.75:
        return "-".join(num[i:i + 4] for i in range(0, len(num), 4))
    return num


def ssn(valid=True):
    if valid:
        area = rng.choice([rng.randrange(1, 666), rng.randrange(667, 900)])
        group = rng.randrange(1, 100)
        serial = rng.randrange(1, 10000)
    else:
        # Only structurally impossible numbers (area 000 or 666, group 00, serial 0000): area
        # 900-999 is an ITIN or a test number, personal data the engine reports. Kind 2 used to
        # draw such an area; it now makes a serial 0000 from the same draws, so every other text
        # of the corpus stays as it was.
        kind = rng.randrange(4)
        areas = [0, 666, rng.randrange(900, 1000), rng.randrange(1, 600)]
        area = areas[3] if kind == 2 else areas[kind]
        group = 0 if kind == 3 and rng.random() < 0.5 else rng.randrange(1, 100)
        serial = 0 if kind == 3 and group != 0 else rng.randrange(1, 10000)
        if kind == 2:
            serial = 0
    sep = pick(["-", "-", "-", " "])
    return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"


def us_phone():
    a = rng.randrange(2, 10) * 100 + rng.randrange(100)
    e = rng.randrange(2, 10) * 100 + rng.randrange(100)
    n = rng.randrange(10000)
    return pick([f"({a}) {e}-{n:04d}", f"{a}-{e}-{n:04d}", f"{a}.{e}.{n:04d}", f"+1 {a} {e} {n:04d}", f"+1-{a}-{e}-{n:04d}", f"1-{a}-{e}-{n:04d}", f"({a}) {e} {n:04d}"])


def intl_phone():
    return pick([
        f"+44 20 {rng.randrange(7000, 8000)} {rng.randrange(10000):04d}",
        f"+44 7{rng.randrange(100, 1000)} {rng.randrange(100000, 1000000)}",
        f"+49 30 {rng.randrange(1000000, 99999999)}",
        f"+33 {rng.randrange(1, 8)} {rng.randrange(10, 100)} {rng.randrange(10, 100)} {rng.randrange(10, 100)} {rng.randrange(10, 100)}",
        f"+91 {rng.randrange(70000, 100000)} {rng.randrange(10000, 100000)}",
        f"+81 3-{rng.randrange(1000, 10000)}-{rng.randrange(1000, 10000)}",
        f"+61 4{rng.randrange(10, 100)} {rng.randrange(100, 1000)} {rng.randrange(100, 1000)}",
        f"+234{rng.randrange(7000000000, 9999999999)}",
    ])


def iban():
    cc = pick(list(COUNTRIES_IBAN))
    length = COUNTRIES_IBAN[cc]
    bban = "".join(rng.choice(string.digits) for _ in range(length - 4))
    if cc == "GB":
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + bban[4:]
    moved = bban + cc + "00"
    num = int("".join(str(int(c, 36)) for c in moved))
    check = 98 - num % 97
    raw = f"{cc}{check:02d}{bban}"
    if rng.random() < 0.6:
        return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))
    return raw


def ipv4():
    return ".".join(str(x) for x in [pick([10, 172, 192, 8, 34, 52, 100, 203]), rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)])


def ipv6():
    groups = [f"{rng.randrange(65536):x}" for _ in range(8)]
    style = rng.randrange(3)
    if style == 0:
        return ":".join(groups)
    if style == 1:
        return f"2001:db8::{groups[6]}:{groups[7]}"
    return f"fe80::{groups[4]}:{groups[5]}:{groups[6]}:{groups[7]}"


def rand_token(n, alphabet=string.ascii_letters + string.digits):
    while True:
        t = "".join(rng.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in t) and any(c.isalpha() for c in t):
            return t


def secret():
    kind = rng.randrange(6)
    if kind == 0:
        return "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)), None
    if kind == 1:
        return pick(["ghp_", "gho_", "ghs_"]) + rand_token(36), None
    if kind == 2:
        return "sk-" + pick(["", "proj-", "ant-api03-"]) + rand_token(rng.randrange(32, 49)), None
    if kind == 3:
        head = rand_token(20, string.ascii_letters + string.digits + "_-")
        return "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ" + head + "." + rand_token(43, string.ascii_letters + string.digits + "_-"), None
    if kind == 4:
        body = "\n".join(rand_token(64, string.ascii_letters + string.digits + "+/") for _ in range(rng.randrange(2, 5)))
        label = pick(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
        return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----", None
    keyword = pick(["api_key = \"", "token: ", "the secret is ", "password=", "DB_PASSWORD=", "Authorization token ", "client_secret: '"])
    return rand_token(rng.randrange(24, 41), string.ascii_letters + string.digits + "+/"), keyword


def bank_number():
    n = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(8, 15)))
    cue = pick(["checking account ", "account number ", "acct # ", "bank account: ", "savings account no. ", "wire to account "])
    return n, cue


def person(held_out_share=0.35):
    first = pick(HELD_OUT_FIRST) if rng.random() < held_out_share else pick(FIRST)
    last = pick(HELD_OUT_LAST) if rng.random() < held_out_share else pick(LAST)
    style = rng.random()
    if style < 0.6:
        return f"{first} {last}"
    if style < 0.85:
        return first
    return f"{first} {rng.choice(string.ascii_uppercase)}. {last}"


class Doc:
    def __init__(self):
        self.parts = []
        self.spans = []
        self.len = 0

    def text(self, s):
        self.parts.append(s)
        self.len += len(s)
        return self

    def value(self, kind, s):
        self.spans.append({"type": kind, "start": self.len, "end": self.len + len(s)})
        return self.text(s)

    def build(self):
        return "".join(self.parts), self.spans


FILLER = [
    "Can you help me with this?", "Thanks in advance.", "Please keep it short.", "Let me know if anything is unclear.",
    "This is urgent.", "I am not sure what went wrong.", "We discussed it in the last meeting.",
    "The deadline is next Friday.", "Please summarise the key points.", "Rewrite it in a friendly tone.",
]


def pii_doc():
    d = Doc()
    kinds = rng.sample(["EMAIL_ADDRESS", "US_SSN", "CREDIT_CARD", "PHONE_NUMBER", "IBAN_CODE", "US_BANK_NUMBER", "IP_ADDRESS", "SECRET", "PERSON", "PERSON", "PERSON"], rng.randrange(1, 4))
    opener = pick(["", "Hi, ", "Please draft a reply. ", "Summarise this ticket: ", "Fix the grammar: ", "Translate to Spanish: ", "From the support queue: ", "Context: "])
    d.text(opener)
    for k in kinds:
        add_value(d, k)
        d.text(" " + pick(FILLER) + " " if rng.random() < 0.5 else " ")
    return d.build()


def add_value(d, k):
    if k == "PERSON":
        name = person()
        tpl = rng.randrange(12)
        if tpl == 0:
            d.text("Dear ").value("PERSON", name).text(",\nthank you for your message.")
        elif tpl == 1:
            d.text(pick(TITLES) + " ").value("PERSON", name.split()[-1] if rng.random() < 0.5 else name).text(" asked about the invoice.")
        elif tpl == 2:
            d.text("My name is ").value("PERSON", name).text(" and I need help with my account.")
        elif tpl == 3:
            d.text("Please forward this to ").value("PERSON", name).text(" before noon.")
        elif tpl == 4:
            d.text("Best regards,\n").value("PERSON", name)
        elif tpl == 5:
            d.value("PERSON", name).text(" reported that the export fails on large files.")
        elif tpl == 6:
            d.text("I had a call with ").value("PERSON", name).text(" yesterday about the renewal.")
        elif tpl == 7:
            d.text("Meeting notes: ").value("PERSON", name).text(" will own the migration, and ")
            d.value("PERSON", person()).text(" reviews it.")
        elif tpl == 8:
            d.text("Signed, ").value("PERSON", name)
        elif tpl == 9:
            d.text("Hi ").value("PERSON", name.split()[0]).text(", can you check the logs?")
        elif tpl == 10:
            d.text("The patient, ").value("PERSON", name).text(", was seen on Tuesday.")
        else:
            d.text("Write a short bio for ").value("PERSON", name).text(", our new product lead.")
    elif k == "EMAIL_ADDRESS":
        first = pick(FIRST + HELD_OUT_FIRST).lower().replace("é", "e").replace("ó", "o").replace("í", "i").replace("-", "")
        last = pick(LAST).lower().replace("ü", "u").replace("á", "a").replace("é", "e")
        local = pick([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randrange(100)}", f"{first}_{last}", f"{first}+news"])
        email = f"{local}@{pick(DOMAINS)}"
        d.text(pick(["Email me at ", "Contact: ", "reply to ", "CC ", "my address is "])).value("EMAIL_ADDRESS", email).text(pick([".", "", " today.", ","]))
    elif k == "US_SSN":
        d.text(pick(["My SSN is ", "SSN: ", "social security number ", "ssn "])).value("US_SSN", ssn()).text(".")
    elif k == "CREDIT_CARD":
        d.text(pick(["Card number ", "charge my card ", "Visa ", "cc: ", "the card ending in nothing, full number "])).value("CREDIT_CARD", credit_card()).text(pick([" exp 09/28.", ".", " please."]))
    elif k == "PHONE_NUMBER":
        num = us_phone() if rng.random() < 0.6 else intl_phone()
        d.text(pick(["Call me at ", "phone: ", "my mobile is ", "Reach the office on ", "tel. "])).value("PHONE_NUMBER", num).text(pick([".", " after 5pm.", ""]))
    elif k == "IBAN_CODE":
        d.text(pick(["IBAN: ", "Please transfer to ", "refund to IBAN "])).value("IBAN_CODE", iban()).text(".")
    elif k == "US_BANK_NUMBER":
        n, cue = bank_number()
        d.text(pick(["Deposit into my ", "Use the ", "Our "]) + cue).value("US_BANK_NUMBER", n).text(pick([".", " with routing on file."]))
    elif k == "IP_ADDRESS":
        ip = ipv4() if rng.random() < 0.65 else ipv6()
        d.text(pick(["The server at ", "Requests from ", "host ", "ssh into "])).value("IP_ADDRESS", ip).text(pick([" keep failing.", " is down.", " timed out."]))
    elif k == "SECRET":
        s, keyword = secret()
        if keyword:
            d.text("Config: " + keyword).value("SECRET", s).text("\"" if keyword.endswith('"') else "").text(" — why does it fail?")
        else:
            d.text(pick(["I accidentally pasted ", "Here is my key ", "env: ", "Debug this:\n"])).value("SECRET", s).text(pick(["\n", " — is it valid?", "."]))


CLEAN = [
    "Explain the difference between a process and a thread.",
    "Write a haiku about autumn leaves.",
    "What are the main causes of inflation?",
    "Summarise the plot of a heist movie in three sentences.",
    "How do I reverse a linked list in Python?",
    "Give me five ideas for a team offsite.",
    "Translate 'good morning, how are you?' into German.",
    "List the pros and cons of remote work.",
    "What is the capital of Australia?",
    "Draft a polite reminder about the overdue report.",
    "Explain how HTTPS protects data in transit.",
    "Suggest a name for a coffee shop near the river.",
    "Why is the sky blue?",
    "Compare SQL and NoSQL databases for a small startup.",
    "Refactor this function to avoid the nested loops.",
]

HARD = [
    lambda: f"Order #{rng.randrange(10**8, 10**10)} was shipped on {rng.randrange(2019, 2026)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}.",
    lambda: f"Upgrade from version {rng.randrange(1, 5)}.{rng.randrange(0, 20)}.{rng.randrange(0, 10)} to {rng.randrange(5, 9)}.{rng.randrange(0, 20)}.{rng.randrange(0, 10)} before Monday.",
    lambda: f"The job started at {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d} and ended at {rng.randrange(24):02d}:{rng.randrange(60):02d}.",
    lambda: f"Test card {credit_card(valid=False)} should be rejected by the validator.",
    lambda: f"The form rejected {ssn(valid=False)} as an invalid number.",
    lambda: f"Ticket {rng.randrange(100000, 999999)} and invoice INV-{rng.randrange(10**5, 10**7)} are linked.",
    lambda: f"Will this work on {pick(['Kubernetes', 'Windows', 'Ubuntu', 'macOS'])}? Mark the task as done when it does.",
    lambda: f"{pick(['Grant', 'Chase', 'Bill', 'Rich', 'Frank'])} access to the {pick(['staging', 'billing', 'reporting'])} bucket for the service account.",
    lambda: f"{pick(['Jenkins', 'Travis', 'Ansible', 'Terraform'])} failed on the main branch again.",
    lambda: f"We moved from {pick(['Visual Studio Code', 'Microsoft Teams', 'Google Chrome', 'Amazon Web Services'])} to {pick(['JetBrains Rider', 'Slack', 'Mozilla Firefox', 'Google Cloud'])} last quarter.",
    lambda: f"The {pick(['New York', 'San Francisco', 'Buenos Aires', 'Hong Kong'])} office opens on {pick(['Monday', 'Tuesday', 'Friday'])}.",
    lambda: f"Our stack uses {pick(['Ruby', 'Julia', 'Rust', 'Elixir'])}, {pick(['Postgres', 'Redis', 'Kafka'])} and {pick(['React', 'Svelte', 'Django'])}.",
    lambda: f"Build {rng.randrange(1000, 9999)}.{rng.randrange(10, 99)} ran {rng.randrange(100, 999)} tests in {rng.randrange(10, 99)}.{rng.randrange(0, 9)} seconds.",
    lambda: f"See the docs at https://docs.example.com/v{rng.randrange(1, 4)}/guide#section-{rng.randrange(1, 20)}.",
    lambda: f"Call the function with xs[::{rng.randrange(2, 5)}] and std::mem::take.",
    lambda: f"The MAC address {':'.join(f'{rng.randrange(256):02X}' for _ in range(6))} belongs to the printer.",
    lambda: f"The sha256 is {''.join(rng.choice('0123456789abcdef') for _ in range(64))}.",
    lambda: f"Hope you are well. Faith in the process is what {pick(['Apple', 'Tesla', 'Amazon'])} sells.",
    lambda: f"Population grew from {rng.randrange(1, 9)},{rng.randrange(100, 999)},{rng.randrange(100, 999)} to {rng.randrange(1, 9)},{rng.randrange(100, 999)},{rng.randrange(100, 999)}.",
    lambda: f"Please Review The Attached Proposal For The {pick(['Q3', 'Q4'])} Roadmap.",
    lambda: f"Coordinates {rng.randrange(10, 80)}.{rng.randrange(1000, 9999)}, -{rng.randrange(10, 170)}.{rng.randrange(1000, 9999)} mark the site.",
    lambda: f"The API key rotation runs every {rng.randrange(2, 30)} days; the token endpoint is /oauth/token.",
    lambda: f"Our password policy needs {rng.randrange(12, 20)} characters and the secret manager is Vault.",
    lambda: f"Part number {rng.choice(string.ascii_uppercase)}{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}-{rng.randrange(10, 99)} is out of stock.",
    lambda: f"May {rng.randrange(1, 29)} is the release date; June is the backup.",
]


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=SEED, help="another seed gives a fresh held-out corpus")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("corpus.jsonl"))
    args = ap.parse_args()
    rng.seed(args.seed)
    out = []
    for i in range(N_PII):
        text, spans = pii_doc()
        out.append({"id": f"pii-{i:04d}", "kind": "pii", "text": text, "spans": spans})
    for i in range(N_CLEAN):
        text = " ".join(rng.sample(CLEAN, rng.randrange(1, 4)))
        out.append({"id": f"clean-{i:04d}", "kind": "clean", "text": text, "spans": []})
    for i in range(N_HARD):
        text = " ".join(pick(HARD)() for _ in range(rng.randrange(1, 3)))
        out.append({"id": f"hard-{i:04d}", "kind": "hard_negative", "text": text, "spans": []})
    rng.shuffle(out)
    path = args.out
    with path.open("w", encoding="utf-8") as f:
        for rec in out:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {len(out)} texts to {path}")


if __name__ == "__main__":
    main()
