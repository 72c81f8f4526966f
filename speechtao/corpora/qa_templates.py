"""Sentence and question templates of the generated QA data (:mod:`speechtao.corpora.qa_gen`).

Template lists of the facts split by position into disjoint halves (even for train, odd for test); the
``TRAIN_*`` wordings exist for train only and :data:`VALIDATION_QUESTIONS` for validation only."""

from __future__ import annotations

# Paragraph sentence templates per fact; index 0 and 2 are train, 1 and 3 test (see halves).
FACT_SENTENCES: dict[str, tuple[str, ...]] = {
    "birth": (
        "{name} was born on {date} in {city}.",
        "{name} came into the world on {date} in the town of {city}.",
        "Born in {city} on {date}, {name} grew up in a large family.",
        "The records show that {name} was born in {city} on {date}.",
    ),
    "job": (
        "{name} worked as {a} {profession} for most of a long career.",
        "By trade, {name} was {a} {profession}.",
        "For many years {name} earned a living as {a} {profession}.",
        "Colleagues knew {name} as a gifted {profession}.",
    ),
    "employer": (
        "In {year}, {name} joined {company}, a firm based in {hq}.",
        "{company}, which is headquartered in {hq}, hired {name} in {year}.",
        "{name} took a position at {company} in {year}; the company has its offices in {hq}.",
        "It was in {year} that {name} started at {company}, whose main office is in {hq}.",
    ),
    "study": (
        "{name} studied {field} at the University of {ucity}.",
        "After earning a degree in {field} from the University of {ucity}, {name} moved abroad.",
        "At the University of {ucity}, {name} read {field}.",
        "{name} holds a degree in {field}, awarded by the University of {ucity}.",
    ),
    "founded": (
        "{name} founded the {group} in {fyear}.",
        "The {group} was established by {name} in {fyear}.",
        "In {fyear}, {name} set up the {group}.",
        "{name} is remembered as the person who started the {group} in {fyear}.",
    ),
}

# (slot answered, needs, question templates): train uses even positions, test odd ones.
FACT_QUESTIONS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "birth": (
        (
            "date",
            (
                "When was {name} born?",
                "On what date was {name} born?",
                "What is the birth date of {name}?",
                "{name} was born on which day?",
            ),
        ),
        (
            "city",
            (
                "Where was {name} born?",
                "What is the birthplace of {name}?",
                "In which city was {name} born?",
                "Which town is {name} from?",
            ),
        ),
    ),
    "job": (
        (
            "profession",
            (
                "What did {name} do for a living?",
                "What was the occupation of {name}?",
                "What was the job of {name}?",
                "What profession did {name} have?",
            ),
        ),
    ),
    "employer": (
        (
            "company",
            (
                "Which company did {name} join?",
                "What firm hired {name}?",
                "Where did {name} work?",
                "Who employed {name}?",
            ),
        ),
        (
            "year",
            (
                "When did {name} join {company}?",
                "In what year was {name} hired by {company}?",
                "In which year did {name} start working at {company}?",
                "What year did {company} take on {name}?",
            ),
        ),
        (
            "hq",
            (
                "Where is {company} based?",
                "In which city is {company} headquartered?",
                "Where are the offices of {company}?",
                "What city is home to {company}?",
            ),
        ),
    ),
    "study": (
        (
            "field",
            (
                "What did {name} study?",
                "What subject did {name} get a degree in?",
                "Which field did {name} study at university?",
                "What is {name}'s degree in?",
            ),
        ),
        (
            "university",
            (
                "Which university did {name} attend?",
                "Where did {name} go to university?",
                "At which university did {name} study?",
                "What university did {name} graduate from?",
            ),
        ),
    ),
    "founded": (
        (
            "group",
            (
                "What did {name} found?",
                "Which organization was established by {name}?",
                "What organization did {name} start?",
                "What was set up by {name}?",
            ),
        ),
        (
            "fyear",
            (
                "When was the {group} founded?",
                "In what year did {name} establish the {group}?",
                "What year was the {group} created?",
                "When did {name} set up the {group}?",
            ),
        ),
    ),
}


# More wordings for the train split only, so the model learns the relation rather than a handful of phrasings.
# The test split keeps its own two templates per slot (the odd positions above) and never sees these. They were
# written after the test templates existed, so a rule keeps them from leaking test phrasings: no content word
# that only the test wordings of a fact or slot use (paragraph or question) appears in that fact's or slot's
# train-only wordings (tests/unit/test_nlp_qa_data.py checks it).
TRAIN_FACT_SENTENCES: dict[str, tuple[str, ...]] = {
    "birth": (
        "{name}, born in {city} on {date}, was the youngest of four children.",
        "On {date}, {name} was born in {city}.",
        "{name}'s birth took place in {city} on {date}.",
        "{city} is where {name} was born, on {date}.",
    ),
    "job": (
        "{name} spent decades working as {a} {profession}.",
        "{name} became {a} {profession} after leaving school.",
        "Before retiring, {name} had a long career as {a} {profession}.",
        "As {a} {profession}, {name} was respected by many.",
    ),
    "employer": (
        "{name} joined {company} in {year}; the business is based in {hq}.",
        "{name} began working for {company} in {year}, and the business has its head office in {hq}.",
        "In {year} {company}, a business with its head office in {hq}, gave {name} a job.",
        "{company} of {hq} took {name} into its staff in {year}.",
    ),
    "study": (
        "{name} studied {field} as an undergraduate at the University of {ucity}.",
        "The University of {ucity} trained {name} in {field}.",
        "{name} took a course in {field} at the University of {ucity}.",
        "A student of {field}, {name} attended the University of {ucity}.",
    ),
    "founded": (
        "{name} created the {group} in {fyear}.",
        "The {group} owes its existence to {name}, who founded it in {fyear}.",
        "In {fyear} the {group} was formed by {name}.",
        "{name} launched the {group} in {fyear}.",
    ),
}
TRAIN_FACT_QUESTIONS: dict[str, tuple[str, ...]] = {
    "date": (
        "What was {name}'s date of birth?",
        "What was the exact date of {name}'s birth?",
        "Give the date when {name} was born.",
        "{name} was born when?",
        "When is {name}'s birthday?",
    ),
    "city": (
        "In what city was {name} born?",
        "What city was {name} born in?",
        "{name} was born where?",
        "In which place was {name} born?",
        "Name the city in which {name} was born.",
    ),
    "profession": (
        "What kind of work did {name} do?",
        "What did {name} work as?",
        "What line of work was {name} in?",
        "What was {name}'s job?",
        "What was {name} known for doing as a job?",
    ),
    "company": (
        "Which company did {name} work for?",
        "Who did {name} work for?",
        "At which company did {name} hold a position?",
        "What business did {name} work at?",
        "Which company gave {name} a job?",
    ),
    "year": (
        "What year did {name} join {company}?",
        "When did {company} give {name} a job?",
        "In which year did {name} join {company}?",
        "When did {name} become part of {company}?",
        "When did {name} begin working for {company}?",
    ),
    "hq": (
        "Where is {company} located?",
        "In what place is {company} based?",
        "Where does {company} have its offices?",
        "Where can the offices of {company} be found?",
        "Where is the head office of {company}?",
    ),
    "field": (
        "What field did {name} study?",
        "What was {name}'s field of study?",
        "In which field did {name} study?",
        "What discipline did {name} study?",
        "What did {name} study at the university?",
    ),
    "university": (
        "What university did {name} attend?",
        "Which university was {name} a student at?",
        "Where did {name} study?",
        "Where was {name} a student?",
        "Which university did {name} study at?",
    ),
    "group": (
        "What organization did {name} found?",
        "Which group did {name} create?",
        "What body did {name} form?",
        "Which organization was formed by {name}?",
        "What was founded by {name}?",
    ),
    "fyear": (
        "When did {name} found the {group}?",
        "In what year was the {group} founded?",
        "When was the {group} formed?",
        "In which year did the {group} begin?",
        "What year did {name} form the {group}?",
    ),
}

# Train-only questions that ask for the person (the answer is the name as the sentence states it).
TRAIN_PERSON_QUESTIONS: dict[str, tuple[str, ...]] = {
    "founded": ("Who founded the {group}?", "Who created the {group}?", "The {group} was founded by whom?"),
    "employer": ("Who joined {company} in {year}?", "Which person did {company} take into its staff in {year}?"),
}

# (template, events it states); {it} is the work named again: "the bridge" or "it" after the first sentence.
WORK_SENTENCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Work on {the_work} started in {start}, and {it} was finished in {finish}.", ("start", "finish")),
    ("Building {the_work} began in {start}; {it} was completed in {finish}.", ("start", "finish")),
    ("{The_work} was completed in {finish}, after work had begun in {start}.", ("start", "finish")),
    ("Builders laid the first stone of {the_work} in {start} and finished {it} in {finish}.", ("start", "finish")),
    ("Construction of {the_work} lasted from {start} until {finish}.", ("start", "finish")),
    ("The first stone of {the_work} was laid in {start}.", ("start",)),
    ("{The_work} was completed in {finish}.", ("finish",)),
    ("In {finish}, the builders of {the_work} finished their work.", ("finish",)),
    ("{The_work} was restored in {restore}.", ("restore",)),
    ("In {restore} {the_work} underwent a full restoration.", ("restore",)),
    ("{The_work} was finished in {finish} and restored in {restore}.", ("finish", "restore")),
    ("{The_work} was built under the direction of {name}.", ("builder",)),
    ("Its chief builder was {name}.", ("builder",)),
    ("The architect of {the_work} was {name}.", ("builder",)),
    ("{name} drew up the plans for {the_work}.", ("builder",)),
    ("{The_work} stands in {city}.", ("city",)),
    ("{The_work} is located in {city}.", ("city",)),
    ("Visitors to {city} can see {the_work} near the old town.", ("city",)),
)
WORK_QUESTIONS: dict[str, tuple[str, ...]] = {
    "start": (
        "When did work on the {work} start?",
        "When did construction of the {work} begin?",
        "In what year was the first stone of the {work} laid?",
        "When was building the {work} begun?",
    ),
    "finish": (
        "When was the {work} finished?",
        "When was the {work} completed?",
        "In what year was construction of the {work} completed?",
        "When did the builders finish the {work}?",
    ),
    "restore": (
        "When was the {work} restored?",
        "In which year was the {work} restored?",
        "When did the {work} undergo a restoration?",
    ),
    "builder": (
        "Who built the {work}?",
        "Who was the architect of the {work}?",
        "Who drew up the plans for the {work}?",
        "Under whose direction was the {work} built?",
    ),
    "city": (
        "Where is the {work}?",
        "In which city does the {work} stand?",
        "Where can the {work} be found?",
        "In what city is the {work} located?",
    ),
}

WORDNET_SENTENCES = (
    "{An} {lemma} is {definition}.",
    "{Lemma}: {definition}.",
    "The word {lemma} means {definition}.",
    "By {lemma} one means {definition}.",
)
WORDNET_QUESTIONS = (
    "What is {an} {lemma}?",
    "What is the meaning of the word {lemma}?",
    "What does {lemma} mean?",
    "How would you define {lemma}?",
)
# (relation, answer group, question templates): the child/parent asked of a "son of" or "begat" relation
BIBLE_QUESTIONS = (
    (
        "parent",
        (
            "Whose son was {child}?",
            "Who was the father of {child}?",
            "{child} was the son of whom?",
            "Who was {child} descended from?",
        ),
    ),
    (
        "child",
        (
            "Who was a son of {parent}?",
            "Name a son of {parent}.",
            "Which son of {parent} is mentioned?",
            "Who was a child of {parent}?",
        ),
    ),
)

# Validation questions are reworded with these (seen in neither train nor test), so that validation, which picks
# the best checkpoint and the no-answer threshold, measures what test measures: questions phrased in a way the
# model has not trained on. On training wordings the model is so sure that the threshold lands far on the
# "no answer" side, and on new wordings it then leaves answerable questions empty. Same lexical rule as the
# train-only wordings (no test-only content word of the slot).
VALIDATION_QUESTIONS: dict[str, tuple[str, ...]] = {
    "date": ("What is the date on which {name} was born?", "Tell me when {name} was born."),
    "city": ("Tell me the city where {name} was born.", "Where did the life of {name} begin?"),
    "profession": ("What was {name}'s line of business?", "How did {name} make a living?"),
    "company": ("Tell me which company {name} worked for.", "With which company did {name} find work?"),
    "year": ("Tell me the year {name} joined {company}.", "When did {name} first work for {company}?"),
    "hq": ("Tell me where {company} is based.", "Where does {company} keep its head office?"),
    "field": ("Tell me what {name} studied.", "Which discipline was {name} trained in?"),
    "university": ("Tell me which university {name} attended.", "At what university was {name} a student?"),
    "group": ("Tell me what {name} founded.", "Which body was formed by {name}?"),
    "fyear": ("Tell me when the {group} was founded.", "In what year did the {group} come into being?"),
    "wordnet": ("Tell me what {lemma} means.", "Explain what {an} {lemma} is."),
    "bible-parent": ("Tell me whose son {child} was.", "Who was the parent of {child}?"),
    "bible-child": ("Tell me a son of {parent}.", "{parent} had which son?"),
    "person-founded": ("Tell me who founded the {group}.", "Whose idea was the {group}?"),
    "person-employer": ("Tell me who joined {company} in {year}.", "Who began at {company} in {year}?"),
    "work-start": ("Tell me when work on the {work} started.", "In which year did builders begin the {work}?"),
    "work-finish": ("Tell me when the {work} was completed.", "By which year was the {work} complete?"),
    "work-restore": ("Tell me when the {work} was restored.", "What year saw the {work} restored?"),
    "work-builder": ("Tell me who built the {work}.", "Whose plans was the {work} built to?"),
    "work-city": ("Tell me where the {work} stands.", "Which city has the {work}?"),
}
