"""Words said by speech synthesisers (Debian's flite and festival): everyday English that is no digit, for
the filler class. Made once per machine into the package cache; nothing is downloaded.

espeak-ng is deliberately not among the training voices: the non-digit benchmark keeps it as voices and
words no model here has heard (benchmarks/nondigits.py).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spoken_digits.atomic import atomic_path
from spoken_digits.data import fsdd
from spoken_digits.data.cache import usable_cores
from spoken_digits.errors import ParameterError

ENGINES = {"flite": "flite", "festival": "text2wave", "espeak": "espeak-ng"}  # engine -> program
INSTALL = {  # engine -> how to get it on Debian
    "flite": "apt-get install flite",
    "festival": "apt-get install festival festvox-kallpc16k",
    "espeak": "apt-get install espeak-ng",
}
PER_WORD = 2  # voices saying each training word
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# No digit word, no homophone of one (to, for, ate, won, oh), no number word holding one (seventeen), no
# close rhyme (nine/fine, seven/heaven, six/fix, three/free): other speech, not almost-digits.
TRAIN_WORDS = """
able above accept across action actor adult advice afraid agent agree ahead allow almost alone along
already also amazing among amount animal another apart apply area argue arm army arrive article artist
aside ask attack aunt avoid away baby back bad bag ball band bank bar base basic bath beach bear beat
beautiful because become bed beer begin believe bell belong below best better big bill bird birthday
black blanket board boat body bone book born boss bottle bottom bowl box boy brain branch brave break
bridge bright bring broad brown budget build burn bus business busy buy cake call calm camp can candle
cap captain car card care carry case cash castle cat catch cause center chair chance change chapter
charge cheap check child choice choose church circle class clean clear clock cloth coat cold collect
college color come comfort common company complete cook cool copy corner correct cost cotton count
country couple course cousin cover cow crazy cream create crowd cry cup cut dad damage dance danger dark
daughter day dead deal dear decide deep degree desk detail develop dog double down draw dream dress
drink drop dry duck during dust duty each ear early earth east easy edge effect egg either else empty
end enemy enjoy enough enter equal even event every exact example expect expert explain eye face fact
fail fall false famous farm fast fat fear feel field fight fill film final find finger fire first fish
flag flat flower fly follow food foot force foreign forget form forward frame fresh front fruit full
future game gas gentle gift girl give glad glass go good grass green ground group grow guard guess guest
guide hair half hall hand hang hard hat have head health hear heart heat heavy help here high hill
history hold hole home hope horse hospital host hot hour house huge human hungry hurry husband ice idea
image important inch include increase industry information interest iron job join joke journey judge
juice jump just keep key kid kill kind king kiss knee know lady lake lamp land language large last laugh
law lawyer lazy lead learn leave left leg lemon lesson level library lie lift light like list live load
local lock long look lose loud love low luck machine magazine mail main major make man manage map mark
match matter meal mean meat medicine member memory metal middle milk mind minute mirror miss mistake
model moment month moon most move much mud name narrow nation nature near neck need nest net news next
nice night noise normal north nose note notice now nurse object ocean offer oil old only order other our
own page pain paint pair palace pants parent park part party pass past path pay peace pen pepper perfect
person pet piano pick piece pig pile pink place plan plant plastic play pleasure plenty point police
pool poor popular possible pot potato power practice prepare present pretty price print prize product
program promise proud public pull pump punish pupil push put queen quick rain raise reach read ready
reason record red remember repeat reply report rest rice rich ride right ring rise road rock roll roof
room root rope rose round rule sad safe sail salt same sand save say school science sea search season
seat second secret see sell send sense serve shade shape share sharp sheep shelf shell ship shirt shop
short shoulder show shut side sing sit size skin sky sleep slow small smell smile smoke snow soap social
soft soldier solid song soon sound soup south space speak special speed spend sport square stage stair
stand star stay steel step stone stop storm street strong study style subject success suit sweet swim
talk tall taste tax tea team tear tell test text thick thin thing think thought throw ticket tidy tie
time tired title today together toilet tool tooth top touch town toy train trust truth try turn type
ugly uncle understand unit until up use useful usual valley value very visit voice vote walk wall want
warm wash watch wave way wear week weigh west wet what when where which white whole why wide wild win
wind wing wise wish with woman wonder wood word work world worry write wrong yard year yes young
""".split()  # noqa: SIM905 (a word list reads better as text)


def voice_list(voices: str) -> list[tuple[str, str]]:
    """ "engine:voice,..." as pairs; an unknown engine or a missing program is a ParameterError."""
    pairs = []
    for item in filter(None, (v.strip() for v in voices.split(","))):
        engine, _, voice = item.partition(":")
        if engine not in ENGINES or not voice:
            raise ParameterError(
                f"filler voice {item!r}: expected engine:voice with engine one of {', '.join(ENGINES)}"
            )
        if shutil.which(ENGINES[engine]) is None:
            raise ParameterError(
                f"filler voice {item}: {ENGINES[engine]} is not installed; {INSTALL[engine]} (Debian), "
                "or train without synthesised filler words (--filler-voices '')"
            )
        pairs.append((engine, voice))
    return pairs


def synthesise(engine: str, voice: str, text: str, path: Path) -> None:
    """One utterance of `text` by `voice` of `engine` into the wav `path`, written atomically."""
    with atomic_path(path) as tmp:
        wav = tmp.with_suffix(".wav")  # the engines choose the format by the name
        if engine == "espeak":
            command = ["espeak-ng", "-v", voice, "-w", str(wav), text]
        elif engine == "flite":
            command = ["flite", "-voice", voice, "-t", text, "-o", str(wav)]
        else:
            command = ["text2wave", "-o", str(wav), "-eval", f"(voice_{voice})"]
        try:
            subprocess.run(command, input=text.encode(), check=True, capture_output=True, timeout=60)
            wav.replace(tmp)
        except (subprocess.SubprocessError, OSError) as exc:
            wav.unlink(missing_ok=True)
            said = getattr(exc, "stderr", b"") or b""
            raise ParameterError(
                f"{engine} voice {voice} could not say {text!r}: {exc} {said.decode(errors='replace').strip()[-200:]}"
            ) from None


def said(
    voices: str, words: Sequence[str] = TRAIN_WORDS, folder: Path | None = None, *, per_word: int = PER_WORD
) -> list[Path]:
    """Wav files of the words said by the voices ("engine:voice,..."), made once into `folder` (default: the
    package cache's tts/), in a stable order: word i by voices i, i + 1, ... (mod n), `per_word` of them."""
    folder = fsdd.cache_dir() / "tts" if folder is None else folder
    pairs = voice_list(voices)
    jobs = [
        (engine, voice, word, folder / engine / voice / f"{word}.wav")
        for k, (engine, voice) in enumerate(pairs)
        for i, word in enumerate(words)
        if (k - i) % len(pairs) < per_word
    ]
    with ThreadPoolExecutor(usable_cores()) as pool:  # each job is a process of its own
        list(pool.map(lambda job: None if job[3].exists() else synthesise(*job), jobs))
    return [job[3] for job in jobs]
