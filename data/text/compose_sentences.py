"""Compose the study's Polish sentences (written for this project; no copied text).

Run `python data/text/compose_sentences.py > data/text/sentences_pl.txt` to regenerate the
committed file. The output is deterministic (fixed seed). Sentences are built from
hand-written, already-inflected phrases, so grammar holds without a morphology engine:
present-tense verbs agree with any singular subject, objects are written in the case their
verb takes, and numbers are spelled out with Polish plural agreement (2-4 vs 5+).
A block of hand-written sentences covers capitals with diacritics (Ą Ć Ę Ł Ń Ó Ś Ź Ż).
"""
import random

ONES = ["", "jeden", "dwa", "trzy", "cztery", "pięć", "sześć", "siedem", "osiem", "dziewięć"]
TEENS = ["dziesięć", "jedenaście", "dwanaście", "trzynaście", "czternaście", "piętnaście",
         "szesnaście", "siedemnaście", "osiemnaście", "dziewiętnaście"]
TENS = ["", "", "dwadzieścia", "trzydzieści", "czterdzieści", "pięćdziesiąt", "sześćdziesiąt",
        "siedemdziesiąt", "osiemdziesiąt", "dziewięćdziesiąt"]
HUNDREDS = ["", "sto", "dwieście", "trzysta", "czterysta", "pięćset", "sześćset", "siedemset",
            "osiemset", "dziewięćset"]


def spell(n: int, feminine: bool = False) -> str:
    """Polish cardinal (accusative = nominative for non-personal nouns), 2 <= n < 1000."""
    words = [HUNDREDS[n // 100]]
    rest = n % 100
    if 10 <= rest < 20:
        words.append(TEENS[rest - 10])
    else:
        words += [TENS[rest // 10], ONES[rest % 10]]
        if feminine and rest % 10 == 2:
            words[-1] = "dwie"
    return " ".join(w for w in words if w)


def plural(n: int, forms: tuple) -> str:
    """forms = (one, few, many): Polish picks 'few' for 2-4 except 12-14."""
    if n == 1:
        return forms[0]
    if n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14):
        return forms[1]
    return forms[2]


COUNTED = [  # (forms, feminine)
    (("kilometr", "kilometry", "kilometrów"), False), (("minutę", "minuty", "minut"), True),
    (("złoty", "złote", "złotych"), False), (("książkę", "książki", "książek"), True),
    (("jabłko", "jabłka", "jabłek"), False), (("stronę", "strony", "stron"), True),
    (("metr", "metry", "metrów"), False), (("łyżkę", "łyżki", "łyżek"), True),
    (("gałąź", "gałęzie", "gałęzi"), True), (("źdźbło", "źdźbła", "źdźbeł"), False),
]

TIMES = ["Wczoraj wieczorem", "Dzisiaj rano", "W każdą środę", "Późnym popołudniem", "Zimą",
         "Zeszłej jesieni", "W czwartek o świcie", "Od samego początku", "Tuż przed północą",
         "Po długiej przerwie", "W niedzielę", "Latem nad jeziorem", "Co roku w maju",
         "Zaraz po śniadaniu", "Pewnego mglistego ranka", "Jutro o dziewiątej"]
SUBJECTS = ["mój sąsiad", "nasza babcia", "młody żołnierz", "cicha dziewczynka", "stary rybak",
            "pani Jadwiga", "pan Łukasz", "ta uczennica", "zmęczony kierowca", "wesoła kucharka",
            "leśniczy z Żywca", "nowa nauczycielka", "mały Staś", "ciekawska Zośka",
            "doświadczony lekarz", "każdy podróżnik", "pilny student", "sprzedawczyni z targu",
            "mądry źrebak", "rudy kot Filip", "inżynier z Gdańska", "ogrodniczka Małgorzata"]
ACTIONS = ["czyta grubą książkę", "maluje żółty płot", "gotuje gęstą zupę grzybową",
           "naprawia zepsuty zegar", "szuka zgubionych kluczy", "liczy drobne monety",
           "piecze świeży chleb", "zbiera dojrzałe jeżyny", "pisze długi list do przyjaciela",
           "słucha cichej muzyki", "sprząta zakurzony strych", "podlewa pomidory i ogórki",
           "ogląda stare zdjęcia", "karmi głodne łabędzie", "składa drewniane krzesło",
           "śpiewa wesołą piosenkę", "uczy się języka węgierskiego", "rysuje mapę okolicy",
           "wybiera ciepły szalik", "przygotowuje gorącą herbatę z miodem"]
PLACES = ["w małej kuchni", "na drewnianym moście", "pod starą wierzbą", "przy oknie",
          "nad brzegiem rzeki", "w ogrodzie za domem", "na dworcu w Łodzi", "w szkolnej bibliotece",
          "obok kościoła", "na skraju lasu", "w pociągu do Krakowa", "na balkonie",
          "w cieniu wysokich sosen", "przed wejściem do muzeum", "na rynku w Poznaniu",
          "w piwnicy pełnej słoików"]
CLAUSES = ["bo deszcz nie przestaje padać", "choć nikt o to nie prosi",
           "a wiatr szumi między gałęziami", "żeby zdążyć przed zmrokiem",
           "chociaż jest już bardzo późno", "bo jutro przyjeżdżają goście z Wrocławia",
           "a pies śpi spokojnie na dywanie", "ponieważ obiecał to swojej siostrze",
           "gdy słońce chowa się za chmurami", "a dzieci bawią się głośno na podwórku",
           "więc wszyscy czekają cierpliwie w kolejce", "choć za oknem pada gęsty śnieg",
           "zanim zgaśnie ostatnie światło w mieście", "bo tak robi się to od pokoleń",
           "i nikt nie zauważa upływu czasu", "a w oddali słychać bicie dzwonów"]
NUMBER_FRAMES = ["{subj_cap} przechodzi {n} {noun} {place}, {clause}.",
                 "{time} {subj} kupuje {n} {noun}, {clause}.",
                 "{time} {subj} liczy {n} {noun} {place} i zapisuje wynik w zeszycie.",
                 "{time} {subj} dostaje {n} {noun}, {clause}."]
COUNT_ONLY_NOUNS = [c for c in COUNTED]
QUESTIONS = ["Czy {subj} naprawdę {action} {place}, {clause}?",
             "Dlaczego {subj} {action} {place}, skoro {clause2}?",
             "Kto wie, czy {subj} {action} {place}, skoro {clause2}?"]
CLAUSES2 = ["wszyscy już śpią", "nikt tego nie potrzebuje", "za oknem jest zimno",
            "jutro też będzie dzień", "sklep zamykają o szóstej"]
EXCLAIM = ["Ależ {subj} pięknie {action} {place}, {clause}!", "Patrzcie, {subj} {action} {place}, {clause}!"]

HANDWRITTEN = [
    "Ćma krąży wokół lampy, a Ćwierć wieku później nikt już nie pamięta tamtej nocy.",
    "Źródło bije spod kamienia, a Źrebię pije z niego wodę, zanim wróci na łąkę.",
    "Żaba skacze do stawu, a Żaneta śmieje się głośno, bo woda pryska na wszystkie strony.",
    "Łódź płynie powoli po jeziorze, a Łukasz macha wiosłem i nuci starą piosenkę.",
    "Ósmego dnia podróży wędrowcy docierają wreszcie do schroniska w górach.",
    "Śnieg pada od rana, więc Świętokrzyskie drogi są dzisiaj wyjątkowo śliskie.",
    "Na drzwiach sklepu wisi kartka z napisem ZAMKNIĘTE DO ŚRODY, więc wracamy do domu.",
    "Nad wejściem ktoś namalował wielkimi literami słowa: UWAGA, ŚLISKA PODŁOGA.",
    "Na pudełku widnieje ostrzeżenie: OSTROŻNIE, SZKŁO, NIE RZUCAĆ, bo zawartość jest krucha.",
    "Tablica przy drodze mówi jasno: ŹRÓDŁO WODY PITNEJ, dwieście metrów w prawo.",
    "Na okładce zeszytu Zosia napisała: MÓJ PAMIĘTNIK, NIE CZYTAĆ, i schowała go pod poduszką.",
    "Szyld nad piekarnią głosi: ŚWIEŻE PĄCZKI I CHAŁKA, więc ustawiamy się w kolejce.",
    "Na murze ktoś wypisał: KOŃ BYŁ TUTAJ, i nikt nie wie, co to właściwie znaczy.",
    "Na słoiku babcia nakleiła etykietę: DŻEM Z RĘKI, ROK DWA TYSIĄCE DWUDZIESTY.",
    "Etykieta na paczce głosi: ĆWIERĆ KILO MĄKI, ŁYŻKA MIODU I SZCZYPTA SOLI.",
    "Przy kasie wisi tabliczka: PŁATNOŚĆ TYLKO GOTÓWKĄ, więc szukamy bankomatu.",
    "Grzegorz, czy możesz mi pomóc? Ta szafa jest zbyt ciężka, żebym przesunął ją sam.",
    "Quiz o historii Xawerego i Violetty trwał całą godzinę, a wszyscy odpowiadali bardzo chętnie.",
    "Wieczorem w radiu mówią o pogodzie: jutro będzie pochmurno, z przelotnymi opadami deszczu.",
    "Hej, uważaj na schodach! Są mokre po myciu, a poręcz jeszcze się chwieje.",
    "Pszczoły brzęczą w trzcinie, a chrząszcz szuka schronienia przed burzą.",
    "W Szczebrzeszynie chrząszcz brzmi w trzcinie, mówi stare polskie przysłowie o trudnych słowach.",
    "Jeżeli zdążymy na pociąg o siódmej, będziemy w Gdyni przed obiadem; jeśli nie, pojedziemy autobusem.",
    "Dziadek opowiada o wojnie: o głodzie, o zimnie i o ludziach, którzy pomagali sobie nawzajem.",
    "Niedźwiedź wychodzi z gawry dopiero wiosną, kiedy w lesie robi się cieplej i jaśniej.",
    "Księżyc świeci nad dachami, a w oknach gasną jedno po drugim ostatnie światła.",
    "Gęś, kaczka i łabędź pływają razem po stawie, nie zwracając uwagi na spacerowiczów.",
    "Półtorej godziny później deszcz wreszcie ustaje i nad miastem pojawia się tęcza.",
    "Ciocia Bożena przywiozła z Zakopanego oscypki, ciupagę i kolorowe pocztówki dla wszystkich.",
    "Maciek zapytał nieśmiało: czy mogę pójść z wami nad rzekę, jeśli skończę lekcje?",
    "W sobotę idziemy do aquaparku, a potem oglądamy wideo z wakacji w Vancouver i zamawiamy taxi.",
    "Książka nosi tytuł „Cisza nad jeziorem” i opowiada o latarniku, który mieszka sam (z psem).",
    "Wszystko zależy od pogody — mówi przewodnik — bo przy silnym wietrze szlak bywa zamknięty.",
    "Biało-czerwona flaga powiewa nad ratuszem, a orkiestra gra marsza dla zebranych mieszkańców.",
    "Ewa, Ignacy i Henryk jadą razem do Olsztyna, gdzie czeka na nich Urszula z Tomaszem.",
    "Yeti to legendarna istota z Himalajów, o której opowiada się dzieciom przy ognisku.",
]


def main(n_generated: int = 640, seed: int = 2024) -> None:
    rng = random.Random(seed)
    seen, out = set(), []
    while len(out) < n_generated:
        kind = rng.random()
        subj, time, place = rng.choice(SUBJECTS), rng.choice(TIMES), rng.choice(PLACES)
        action, clause = rng.choice(ACTIONS), rng.choice(CLAUSES)
        if kind < 0.45:
            s = f"{time} {subj} {action} {place}, {clause}."
        elif kind < 0.7:
            forms, fem = rng.choice(COUNTED)
            n = rng.randrange(2, 1000)
            s = rng.choice(NUMBER_FRAMES).format(
                subj=subj, subj_cap=subj[0].upper() + subj[1:], time=time, place=place,
                clause=clause, n=spell(n, fem), noun=plural(n, forms))
        elif kind < 0.9:
            s = rng.choice(QUESTIONS).format(subj=subj, action=action, place=place, clause=clause,
                                             clause2=rng.choice(CLAUSES2))
        else:
            s = rng.choice(EXCLAIM).format(subj=subj, action=action, place=place, clause=clause)
        s = s[0].upper() + s[1:]
        if s not in seen:
            seen.add(s)
            out.append(s)
    for s in HANDWRITTEN + out:
        print(s)


if __name__ == "__main__":
    main()
