"""The demo world: four institutions, their systems and keys, APIs answered by demo
provider systems, approved grants and one pending request.

Everything here goes through the registry service (with audit events), exactly as an
operator would onboard real institutions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kiungo.protocol import generate_private_key
from kiungo.registry.service import RegistryService
from kiungo.sdk.provider import ForwardedRequest, Refusal

ACTOR = "demo"
_ENTRY = re.compile(r"B-\d{4}-\d{6}")


@dataclass(frozen=True)
class DemoSystem:
    code: str
    institution: str
    name: str
    provides: tuple[str, ...] = ()
    publishes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DemoApi:
    code: str
    name: str
    provider: str
    format: str
    description: str
    path: str


INSTITUTIONS = (
    ("NIDA", "National Identification Authority", "Mamlaka ya Vitambulisho vya Taifa", "authority"),
    ("RITA", "Registration, Insolvency and Trusteeship Agency",
     "Wakala wa Usajili, Ufilisi na Udhamini", "agency"),
    ("MOH", "Ministry of Health", "Wizara ya Afya", "ministry"),
    ("DCC", "Dodoma City Council", "Halmashauri ya Jiji la Dodoma", "council"),
)  # fmt: skip

SYSTEMS = (
    DemoSystem("NIDA-IDS", "NIDA", "NIDA Identity Service", provides=("NIDA-VERIFY", "NIDA-RQ")),
    DemoSystem("RITA-CRVS", "RITA", "Civil Registration and Vital Statistics",
               provides=("RITA-BIRTH-CERT",), publishes=("RITA-BIRTH-REGISTERED",)),
    DemoSystem("MOH-HMIS", "MOH", "Health Management Information System"),
    DemoSystem("DCC-REVENUE", "DCC", "Council Revenue Collection System"),
)  # fmt: skip

APIS = (
    DemoApi("NIDA-VERIFY", "Verify a national identity number", "NIDA-IDS", "json",
            "Thibitisha namba ya kitambulisho cha taifa (NIN) / Verify a NIN", "/nida/verify"),
    DemoApi("NIDA-RQ", "Identity details on behalf of a person", "NIDA-IDS", "json",
            "Taarifa za mtu kwa idhini yake / Person details with consent", "/nida/on-behalf"),
    DemoApi("RITA-BIRTH-CERT", "Birth certificate lookup", "RITA-CRVS", "xml",
            "Taarifa za cheti cha kuzaliwa / Birth certificate details", "/rita/birth"),
)  # fmt: skip

GRANTS = (
    ("MOH-HMIS", "NIDA-VERIFY", True),
    ("MOH-HMIS", "NIDA-RQ", True),
    ("MOH-HMIS", "RITA-BIRTH-CERT", True),
    ("DCC-REVENUE", "NIDA-VERIFY", True),
    ("DCC-REVENUE", "RITA-BIRTH-CERT", False),  # pending: the institution asked, nobody decided
)

TOPICS = (("RITA-BIRTH-REGISTERED", "Birth registered / Kuzaliwa kumesajiliwa", "RITA-CRVS"),)
SUBSCRIPTIONS = (("RITA-BIRTH-REGISTERED", "MOH-HMIS"),)

# Synthetic people: the demo never holds real personal data.
PEOPLE: dict[str, dict[str, Any]] = {
    "19900101-11111-00001-23": {
        "nin": "19900101-11111-00001-23",
        "jina": "Zuhura Mwanaisha Salum",
        "jinsia": "KE",
        "tareheYaKuzaliwa": "1990-01-01",
        "mkoa": "Dar es Salaam",
        "wilaya": "Kinondoni",
        "hali": "HAI",
    },
    "19851231-22222-00002-45": {
        "nin": "19851231-22222-00002-45",
        "jina": "Juma Hamisi Mwakyusa",
        "jinsia": "ME",
        "tareheYaKuzaliwa": "1985-12-31",
        "mkoa": "Mbeya",
        "wilaya": "Rungwe",
        "hali": "HAI",
    },
}
BIRTHS: dict[str, dict[str, str]] = {
    "B-2024-000117": {
        "entryNo": "B-2024-000117",
        "childName": "Neema Zuhura Salum",
        "dateOfBirth": "2024-03-14",
        "placeOfBirth": "Hospitali ya Rufaa Dodoma",
        "motherNin": "19900101-11111-00001-23",
    },
}


@dataclass
class SeededSystem:
    spec: DemoSystem
    client_id: str
    client_secret: str
    private_key_b64: str
    api_codes: list[str] = field(default_factory=list)
    push_codes: list[str] = field(default_factory=list)


async def seed(registry: RegistryService, provider_urls: dict[str, str]) -> list[SeededSystem]:
    """Create the demo world; ``provider_urls`` maps a provider system to its base URL."""
    for code, name_en, name_sw, category in INSTITUTIONS:
        await registry.create_institution(
            ACTOR, code=code, name_en=name_en, name_sw=name_sw, category=category
        )
    seeded = []
    for spec in SYSTEMS:
        key = generate_private_key()
        system, secret = await registry.create_system(
            ACTOR,
            code=spec.code,
            institution=spec.institution,
            name=spec.name,
            public_key=key.public_key.b64,
        )
        seeded.append(
            SeededSystem(
                spec, system["client_id"], secret, key.b64, push_codes=list(spec.publishes)
            )
        )
    for api in APIS:
        await registry.create_api(
            ACTOR,
            code=api.code,
            name=api.name,
            provider=api.provider,
            endpoint_url=provider_urls[api.provider] + api.path,
            format=api.format,
            description=api.description,
            timeout_ms=5000,
        )
    by_code = {s.spec.code: s for s in seeded}
    for consumer, api_code, approved in GRANTS:
        grant = await registry.request_grant(
            f"{consumer}-admin", consumer=consumer, api=api_code, reason="demo"
        )
        if approved:
            await registry.decide_grant(ACTOR, grant["id"], "approve")
            by_code[consumer].api_codes.append(api_code)
    for code, name, publisher in TOPICS:
        await registry.create_topic(ACTOR, code=code, name=name, publisher=publisher)
    for topic, subscriber in SUBSCRIPTIONS:
        await registry.subscribe(ACTOR, topic=topic, subscriber=subscriber, approved=True)
    return seeded


# --- the demo providers' answers ---------------------------------------------------------


def nida_verify(request: ForwardedRequest) -> dict[str, Any]:
    body = request.body if isinstance(request.body, dict) else {}
    nin = body.get("nin") or body.get("NIN")
    person = PEOPLE.get(str(nin))
    if person is None:
        raise Refusal(f"Namba ya NIDA {nin} haipo / NIN {nin} not found")
    return {
        "nin": person["nin"],
        "jina": person["jina"],
        "hali": person["hali"],
        "imethibitishwa": True,
    }


def nida_on_behalf(request: ForwardedRequest) -> dict[str, Any]:
    body = request.body if isinstance(request.body, dict) else {}
    payload = body.get("Payload") if isinstance(body.get("Payload"), dict) else body
    nin = payload.get("NIN") or payload.get("nin")
    person = PEOPLE.get(str(nin))
    if person is None:
        raise Refusal(f"Namba ya NIDA {nin} haipo / NIN {nin} not found")
    return {"requestedBy": request.user_id, "person": person}


def rita_birth(request: ForwardedRequest) -> dict[str, Any]:
    body = request.body
    if isinstance(body, dict):
        entry = body.get("entryNo")
        if entry is None and isinstance(body.get("root"), dict):
            entry = body["root"].get("entryNo")
    else:
        # The JavaScript connector sends an XML body as text: "<root>…</root>".
        found = _ENTRY.search(str(body or ""))
        entry = found.group() if found else str(body or "").strip()
    record = BIRTHS.get(str(entry))
    if record is None:
        raise Refusal(f"Cheti {entry} hakipo / birth entry {entry} not found")
    return {"birthCertificate": record}


HANDLERS = {
    "/nida/verify": nida_verify,
    "/nida/on-behalf": nida_on_behalf,
    "/rita/birth": rita_birth,
}
