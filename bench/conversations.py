"""A seeded generator of multi-session user/assistant conversations with known evidence turns.

Each persona talks to an assistant over several sessions days apart (turns minutes apart), mostly
about everyday tasks (cooking, travel, code, money, ...). Personal facts are dropped into that chat
once ("my sister Ana lives in Porto"), some change later (a move, a new job, a new deadline), some
accumulate (a second pet), and some are said by the assistant (a recommendation). Distractors share
the facts' vocabulary: other people's cities and allergies, mentions of the same sister with no
city, the same project's kick-off date, travel chat about other places.

Questions are asked after the last session, each in a new thread that opens with a little small
talk. A question's evidence is the turn(s) that answer it: for a changed fact the latest statement
("what changed" questions: the previous and the latest). Everything is deterministic for a seed
(and an `end` time, which only shifts the timestamps).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

DEFAULT_END = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)

# ---- output ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    id: str
    session_id: str
    role: str  # "user" or "assistant"
    content: str
    created_at: datetime


@dataclass(frozen=True)
class Session:
    id: str
    persona_id: str
    started_at: datetime
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Question:
    id: str
    persona_id: str
    user_id: str
    thread_id: str  # a new session: only `opening` is in it when the question is asked
    kind: str  # static, updated, changed, multi, assistant, preference
    fact: str
    text: str
    answer: str
    evidence: tuple[str, ...]  # turn ids
    asked_at: datetime
    opening: tuple[Turn, ...]


@dataclass(frozen=True)
class Persona:
    id: str
    user_id: str
    name: str
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]

    def turns(self) -> list[Turn]:
        """Every history turn (not the question threads), oldest first."""
        return [turn for session in self.sessions for turn in session.turns]


@dataclass(frozen=True)
class Conversations:
    seed: int
    personas: tuple[Persona, ...]

    def questions(self) -> list[Question]:
        return [q for p in self.personas for q in p.questions]


# ---- vocabulary -----------------------------------------------------------------------------
# fmt: off

NAMES = [
    "Ana", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Keiko", "Liam", "Maya", "Nikhil", "Olga", "Pedro", "Quinn", "Rosa", "Sami", "Tara",
    "Umar", "Vera", "Wes", "Ximena", "Yusuf", "Zoe", "Marta", "Tomas", "Priya", "Felix",
    "Leah", "Omar", "Nadia", "Colin", "Ingrid", "Mateo", "Hana", "Arjun", "Beatriz", "Declan",
    "Sofia", "Emeka", "Lucia", "Rafael", "Mei", "Theo", "Amara", "Jakob", "Noor", "Caleb",
]
CITIES = [
    "Porto", "Lisbon", "Denver", "Austin", "Portland", "Seattle", "Chicago", "Boston", "Toronto",
    "Vancouver", "Madrid", "Valencia", "Lyon", "Berlin", "Hamburg", "Munich", "Dublin",
    "Edinburgh", "Manchester", "Melbourne", "Sydney", "Auckland", "Minneapolis", "Pittsburgh",
    "Raleigh", "San Diego", "Sacramento", "Montreal", "Copenhagen", "Utrecht",
]
COMPANIES = [
    "Northwind", "Brightline Health", "Fabrikam", "Helix Robotics", "Juniper Analytics",
    "Bluefin Logistics", "Copperleaf Bank", "Tidewater Energy", "Larkspur Games",
    "Meridian Insurance", "Oakridge Labs", "Pinecrest Media", "Quillon Software",
    "Redwood Outfitters", "Silverline Travel", "Tandem Bikes", "Verdant Foods",
    "Westbrook Hospital", "Zephyr Airlines", "Harbor City Schools",
]
ROLES = [
    "data analyst", "product manager", "nurse", "UX designer", "backend engineer",
    "high school teacher", "accountant", "marketing coordinator", "project manager",
    "physical therapist", "sales engineer", "copywriter", "QA engineer", "architect",
    "pharmacist", "recruiter", "operations lead", "research scientist",
]
ALLERGENS = [
    "shellfish", "peanuts", "tree nuts", "sesame", "eggs", "soy", "kiwi", "mustard", "celery",
    "strawberries", "shrimp", "cashews",
]
SPECIES = ["cat", "dog", "rabbit", "parrot", "tortoise", "ferret", "hamster", "beagle puppy"]
PET_NAMES = [
    "Miso", "Pepper", "Biscuit", "Juniper", "Olive", "Mochi", "Ziggy", "Pickles", "Noodle",
    "Clementine", "Waffles", "Luna", "Otis", "Maple", "Ruby", "Basil", "Pretzel", "Sprout",
]
PROJECTS = [
    "quarterly report", "grant proposal", "website redesign", "thesis draft", "client pitch deck",
    "budget review", "data migration", "conference talk", "product launch plan", "annual audit",
    "onboarding handbook", "vendor contract renewal",
]
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
INSTRUMENTS = [
    "cello", "piano", "guitar", "violin", "drums", "saxophone", "ukulele", "trumpet", "flute",
    "banjo",
]
DESTINATIONS = [
    "Japan", "Iceland", "Morocco", "Peru", "Vietnam", "Greece", "Portugal", "Norway",
    "Mexico City", "Croatia", "New Zealand", "Costa Rica", "Scotland", "Sicily", "Tanzania",
    "Chile",
]
CARS = [
    "Subaru Outback", "Toyota Prius", "Honda Civic", "Mazda CX-5", "Volkswagen Golf",
    "Tesla Model 3", "Ford Maverick", "Kia Niro", "Hyundai Ioniq 5", "Volvo XC40", "Mini Cooper",
    "Jeep Wrangler",
]
RACES = {
    "half marathon": ["1:45", "1:50", "1:55", "2:00", "2:05", "2:10"],
    "10K": ["45 minutes", "48 minutes", "50 minutes", "52 minutes", "55 minutes"],
    "marathon": ["3:30", "3:45", "3:55", "4:00", "4:15"],
    "5K": ["22 minutes", "24 minutes", "25 minutes", "27 minutes", "29 minutes"],
}
PARTNERS = ["wife", "husband", "partner", "girlfriend", "boyfriend", "fiancée"]
SIBLINGS = ["sister", "brother"]
KIDS = ["daughter", "son"]
SCHOOLS = [
    "Maple Grove Elementary", "Riverside Middle School", "Lincoln Park Academy",
    "Cedar Hill Montessori", "Westview Primary", "Brookside Elementary", "Hillcrest School",
]
APPOINTMENTS = ["dentist", "eye doctor", "dermatologist", "physiotherapist", "allergist"]
BOOKS = [
    "The Remains of the Day", "Piranesi", "Project Hail Mary", "Station Eleven", "The Overstory",
    "Pachinko", "A Gentleman in Moscow", "Circe", "The Left Hand of Darkness",
    "Lincoln in the Bardo", "Klara and the Sun", "Demon Copperhead", "The Dispossessed",
]
LANGUAGES = [
    "Italian", "Japanese", "Portuguese", "Korean", "German", "Dutch", "Mandarin", "Greek",
    "Swedish", "Turkish",
]
COFFEES = [
    "oat milk flat white", "double espresso", "iced americano with a splash of milk", "cortado",
    "chai latte with oat milk", "decaf cappuccino", "cold brew with vanilla",
]
PODCAST_TOPICS = [
    "personal finance", "Roman history", "urban gardening", "astronomy", "productivity",
    "behavioral economics", "climate science", "design", "jazz history", "nutrition science",
]
PODCAST_TITLES = [
    "Deep Roots", "The Long Game", "Small Bets", "Field Notes", "Signal and Noise",
    "Slow Burn Radio", "The Margins", "Second Draft", "Night Sky Hours", "Common Ground",
    "Backyard Science", "Tiny Victories",
]
LEFTOVERS = {
    "chickpeas": ["chickpea and spinach curry", "crispy roasted chickpea salad"],
    "spinach": ["spinach and feta frittata", "creamy spinach pasta"],
    "sweet potatoes": ["sweet potato and black bean tacos", "sweet potato hash"],
    "rice": ["vegetable fried rice", "rice and bean burrito bowls"],
    "zucchini": ["zucchini fritters", "zucchini and lemon orzo"],
    "butternut squash": ["butternut squash risotto", "roasted squash soup"],
    "lentils": ["lentil shepherd's pie", "red lentil dal"],
    "feta": ["baked feta pasta", "watermelon and feta salad"],
}
SHOWS = [
    "Slow Horses", "The Bear", "Severance", "Shogun", "Bluey", "Only Murders in the Building",
    "The Great British Bake Off", "Reservation Dogs", "Succession", "Abbott Elementary",
]

# ---- everyday topics: the bulk of every session ----------------------------------------------

INGREDIENTS = [
    "chicken thighs", "salmon", "tofu", "mushrooms", "cauliflower", "black beans", "halloumi",
    "shrimp", "ground turkey", "eggplant", "leeks", "peanut butter", "sesame noodles", "cod",
]
DISHES = [
    "a sheet-pan traybake", "a Thai green curry", "a mushroom risotto", "fish tacos",
    "a ramen bowl", "a lentil stew", "stuffed peppers", "a Greek salad", "pad thai",
    "a shrimp stir-fry", "a cashew chicken", "minestrone",
]
WORK_ITEMS = [
    "vendor invoice", "team offsite", "hiring plan", "Q3 roadmap", "security review", "office move",
]
# fmt: on


@dataclass(frozen=True)
class Topic:
    name: str
    asks: tuple[str, ...]
    follows: tuple[str, ...]
    tips: tuple[str, ...]
    slots: dict[str, Sequence[str]]


TOPICS: tuple[Topic, ...] = (
    Topic(
        "cooking",
        asks=(
            "Can you give me a quick weeknight dinner idea using {ingredient}?",
            "I want to meal prep lunches for the week. Something with {ingredient} maybe?",
            "What's a good side dish to go with {dish}?",
            "How long does cooked {ingredient} keep in the fridge?",
            "I'm hosting {n} people on Saturday. What's an easy main course that scales?",
            "Is there a way to make {dish} a bit lighter?",
            "What spices would you keep in a basic pantry?",
        ),
        follows=(
            "Could I swap the {ingredient} for something else?",
            "How much of that should I make for {n} people?",
            "Can I freeze it?",
            "What if I don't have an oven?",
            "Would that work in a slow cooker?",
        ),
        tips=(
            "A simple option is {dish}: it comes together in about {minutes} minutes and "
            "reheats well.",
            "Roast the {ingredient} at a high temperature so the edges caramelize, then toss it "
            "with lemon and herbs.",
            "If you batch-cook on Sunday, portion everything into containers right away so it "
            "cools quickly.",
            "Cooked {ingredient} usually keeps three to four days in a sealed container in the "
            "fridge.",
            "For {n} people, plan on roughly one and a half portions each so nobody leaves hungry.",
            "A crisp green salad with a mustard vinaigrette balances a rich main nicely.",
            "You can lighten {dish} by using yogurt instead of cream and adding more vegetables.",
            "Most stews and soups freeze well for up to three months; leave some headroom in the "
            "container.",
            "A stovetop version works fine too: use a heavy pan with a lid and keep the heat "
            "medium-low.",
            "Season in layers, a pinch of salt at each stage tastes better than a lot at the end.",
            "Cumin, smoked paprika, chili flakes, oregano and a good curry powder cover most "
            "weeknight cooking.",
        ),
        slots={
            "ingredient": INGREDIENTS,
            "dish": DISHES,
            "n": ["four", "six", "eight", "ten", "twelve"],
            "minutes": ["20", "25", "30", "40"],
        },
    ),
    Topic(
        "travel",
        asks=(
            "What should I pack for a week in {place} in {month}?",
            "Is it worth getting a rail pass for {place}?",
            "How many days would you spend in {place} on a first visit?",
            "What are some good neighborhoods to stay in when visiting {place}?",
            "Any tips for dealing with jet lag on a long flight?",
            "How early should I book flights for a trip in {month}?",
        ),
        follows=(
            "Is that doable on a tight budget?",
            "What about getting around without a car?",
            "Do I need any vaccinations or visas for that?",
            "Would you do a day trip from there?",
        ),
        tips=(
            "In {month} the weather in {place} can swing a lot, so pack layers and a light rain "
            "jacket.",
            "Four or five days is a comfortable first visit; add a day if you want a side trip.",
            "A rail pass only pays off if you take several long trips; for short hops buy single "
            "tickets.",
            "Staying near the old town keeps you walking distance from most sights, though it "
            "costs a bit more.",
            "Shift your sleep an hour a day before leaving and get daylight as soon as you land.",
            "Booking about two to three months ahead usually gets the best fares for {month}.",
            "Public transport is usually the easiest way around; a contactless card works on most "
            "buses and trams.",
            "Check the official government travel page for entry rules a few weeks before you go.",
            "Pack a small day bag, a refillable water bottle and comfortable walking shoes.",
            "Hostels and guesthouses outside the center are much cheaper and still well connected.",
        ),
        slots={"place": DESTINATIONS + CITIES, "month": MONTHS},
    ),
    Topic(
        "fitness",
        asks=(
            "Can you suggest a {minutes}-minute workout I can do at home?",
            "How should I structure my week if I want to run three times and lift twice?",
            "My knees ache after long runs. Any stretches that help?",
            "What's a good warm-up before {activity}?",
            "How do I get back into exercise after a few weeks off?",
            "Is it better to work out in the morning or the evening?",
        ),
        follows=(
            "How many sets and reps for that?",
            "What if I only have dumbbells?",
            "Should I rest completely on the other days?",
            "How long until I notice a difference?",
        ),
        tips=(
            "Try a circuit of squats, push-ups, lunges, planks and glute bridges, three rounds "
            "with a minute of rest.",
            "Keep easy runs truly easy; most of your weekly mileage should feel conversational.",
            "Foam rolling the quads and calf raises often help with knee pain after long runs.",
            "Five minutes of brisk walking plus leg swings and hip circles is a solid warm-up for "
            "{activity}.",
            "Start at about half of what you used to do and add ten percent a week.",
            "The best time to train is the one you can stick to; consistency beats timing.",
            "Three sets of eight to twelve reps is a good default for building strength.",
            "Put the lifting days after easy runs, not the day before a long run.",
            "Sleep and protein matter as much as the sessions themselves for recovery.",
            "If something hurts sharply rather than aches, stop and get it checked.",
        ),
        slots={
            "minutes": ["15", "20", "30", "45"],
            "activity": ["a long run", "leg day", "a bike ride", "yoga", "a tennis match"],
        },
    ),
    Topic(
        "coding",
        asks=(
            "My Python script throws a KeyError when I read the {thing} from the config. Ideas?",
            "What's the cleanest way to remove duplicates from a list but keep the order?",
            "Can you explain the difference between a left join and an inner join?",
            "How do I undo my last git commit without losing the changes?",
            "Why would a pandas merge suddenly produce more rows than either table?",
            "What's a good way to structure a small Flask or FastAPI project?",
        ),
        follows=(
            "Could you show a tiny example?",
            "Does that work in older Python versions too?",
            "What about performance on a big file?",
            "Is there a way to test that?",
        ),
        tips=(
            "Use dict.get with a default, or check membership first, so a missing {thing} key "
            "doesn't crash.",
            "list(dict.fromkeys(items)) removes duplicates and keeps the original order.",
            "An inner join keeps only matching rows; a left join keeps every row from the left "
            "table and fills gaps with nulls.",
            "git reset --soft HEAD~1 undoes the commit and leaves your changes staged.",
            "Duplicate keys on both sides multiply rows in a merge; check uniqueness with "
            "value_counts first.",
            "Keep routes, models and services in separate modules and load settings from "
            "environment variables.",
            "For big files, stream line by line instead of reading everything into memory.",
            "A small pytest test with a fixture that builds the input makes this easy to pin down.",
            "Type hints plus a linter catch a surprising number of these bugs before runtime.",
        ),
        slots={"thing": ["database URL", "API token", "timeout", "output folder", "region"]},
    ),
    Topic(
        "money",
        asks=(
            "Can you help me set up a simple monthly budget?",
            "Is it smarter to pay off my credit card or build an emergency fund first?",
            "How much should I be putting into retirement savings at my age?",
            "What's a reasonable amount to spend on {purchase}?",
            "How do I stop impulse buying online?",
        ),
        follows=(
            "What if my income changes month to month?",
            "Is there an app you'd suggest for tracking that?",
            "How would that look with numbers?",
        ),
        tips=(
            "The 50/30/20 split is a simple start: needs, wants, and savings or debt.",
            "Pay the high-interest card down first while keeping a small starter emergency fund.",
            "A common rule of thumb is saving fifteen percent of gross income for retirement.",
            "For {purchase}, decide on a ceiling before you shop and compare three options.",
            "Remove saved cards from shopping sites and wait 48 hours before any non-essential "
            "purchase.",
            "With irregular income, budget from your lowest typical month and save the surplus.",
            "A spreadsheet with one row per category works as well as most apps.",
            "Automate transfers to savings on payday so the money never sits in checking.",
        ),
        slots={"purchase": ["a new laptop", "a couch", "a wedding gift", "a road bike", "a phone"]},
    ),
    Topic(
        "work",
        asks=(
            "Can you help me write a short email to my manager about the {item}?",
            "How do I politely decline a meeting that has no agenda?",
            "I have to give feedback to a teammate who keeps missing deadlines. How do I start?",
            "What's a good structure for a weekly status update?",
            "Can you turn these notes into a summary: {item} slipped, waiting on legal, "
            "next sync Thursday.",
        ),
        follows=(
            "Can you make it a bit less formal?",
            "Shorter please.",
            "Could you add a line asking for a decision by Friday?",
        ),
        tips=(
            "Here's a draft: 'Hi, a quick update on the {item}: we're on track for the main "
            "pieces, with one open question I'd like your input on.'",
            "Ask for the agenda first; if there isn't one, suggest handling it asynchronously.",
            "Start with a specific example, describe the impact, and ask what's getting in the "
            "way.",
            "A status update works well as three parts: done, next, and blocked.",
            "Summary: the {item} is delayed pending legal review; the next sync is Thursday.",
            "Keep the subject line specific so it's easy to find later.",
            "Ending with a clear ask and a date makes replies much more likely.",
        ),
        slots={"item": WORK_ITEMS},
    ),
    Topic(
        "media",
        asks=(
            "I just finished {show}. What should I watch next?",
            "Can you recommend a novel that's gripping but not too long?",
            "What's a good documentary about {subject}?",
            "I want to read more nonfiction. Where should I start?",
            "Any good podcasts for a long drive?",
        ),
        follows=(
            "Something a bit lighter?",
            "Is it on any of the big streaming services?",
            "Have you got one more in that vein?",
        ),
        tips=(
            "If you liked {show}, you might enjoy a tightly written thriller with short episodes.",
            "A short, gripping novel could be a classic like Never Let Me Go or a modern mystery.",
            "For {subject}, look for a documentary that follows real people rather than experts.",
            "Popular science collections are an easy entry point because each chapter stands "
            "alone.",
            "For a long drive, narrative podcasts with a single story per season work best.",
            "Short-story collections are great when you only have twenty minutes before bed.",
            "Check your library app; many audiobooks are free with a card.",
        ),
        slots={
            "show": SHOWS,
            "subject": ["the deep ocean", "architecture", "chess", "food waste", "space probes"],
        },
    ),
    Topic(
        "home",
        asks=(
            "My {plant} has yellow leaves. What am I doing wrong?",
            "What's the easiest way to get rid of mold in a bathroom?",
            "How do I fix a dripping kitchen faucet?",
            "Any tips for keeping a small apartment tidy?",
            "What vegetables are easy to grow on a balcony?",
        ),
        follows=(
            "What tools would I need?",
            "How often should I do that?",
            "Is it safe with pets around?",
        ),
        tips=(
            "Yellow leaves on a {plant} usually mean overwatering; let the top few centimeters "
            "of soil dry out.",
            "A diluted vinegar spray handles light mold; improve ventilation so it doesn't return.",
            "A dripping faucet is often a worn washer or cartridge, a cheap part to replace.",
            "A ten-minute reset every evening keeps a small space from getting overwhelming.",
            "Cherry tomatoes, lettuce, herbs and chili peppers all do well in balcony pots.",
            "Turn off the water supply under the sink before taking anything apart.",
            "Most houseplants prefer bright, indirect light over direct afternoon sun.",
        ),
        slots={"plant": ["monstera", "fiddle leaf fig", "pothos", "snake plant", "basil plant"]},
    ),
    Topic(
        "wellbeing",
        asks=(
            "I keep waking up at 4am and can't fall back asleep. Any advice?",
            "How much water should I actually be drinking?",
            "What are some quick ways to handle stress during a busy workday?",
            "Is it normal to feel tired after lunch every day?",
            "How can I cut down on screen time in the evenings?",
        ),
        follows=(
            "What if that doesn't work?",
            "Should I see a doctor about it?",
            "Is caffeine part of the problem?",
        ),
        tips=(
            "Keep a consistent wake time, even on weekends, and avoid checking the clock at night.",
            "Thirst is a decent guide for most people; pale yellow urine means you're fine.",
            "A two-minute breathing exercise or a short walk between meetings helps reset.",
            "A heavy, carb-rich lunch often causes a dip; a short walk afterwards helps.",
            "Charge your phone outside the bedroom and set an app limit after 9pm.",
            "If the problem lasts more than a few weeks, it's worth talking to your doctor.",
            "Caffeine after early afternoon can still affect your sleep that night.",
        ),
        slots={},
    ),
    Topic(
        "gifts",
        asks=(
            "I need a birthday gift idea for my {person} who has everything.",
            "What's a thoughtful gift under fifty dollars for a {person}?",
            "Can you help me plan a small surprise party?",
            "What should I write in a card for my {person}'s retirement?",
        ),
        follows=(
            "Something more personal?",
            "What if it has to ship internationally?",
            "Any ideas that aren't physical things?",
        ),
        tips=(
            "Experiences are a safe bet for someone who has everything: a cooking class or "
            "concert tickets.",
            "A framed photo, a nice notebook or a local food hamper all work under fifty dollars.",
            "For a surprise party, recruit one co-conspirator and keep the guest list small.",
            "A card can be simple: one specific memory and one wish for what comes next.",
            "A subscription, like coffee or flowers, keeps giving for months.",
            "Personalized gifts take longer to make, so order at least two weeks ahead.",
        ),
        slots={"person": ["dad", "mom", "best friend", "coworker", "aunt", "neighbor"]},
    ),
    Topic(
        "career",
        asks=(
            "How do I prepare for a behavioral interview?",
            "Should I negotiate a job offer even if the salary seems fine?",
            "How do I ask my manager for more responsibility?",
            "Is it a red flag if a company has a lot of open roles?",
            "How do I write a LinkedIn summary that doesn't sound generic?",
        ),
        follows=(
            "What if they say no?",
            "How long should that be?",
            "Can you give me an example answer?",
        ),
        tips=(
            "Prepare five stories with the STAR format and adapt them to each question.",
            "It's almost always worth asking; negotiate on the whole package, not just salary.",
            "Come with a concrete proposal of what you'd take on and how it helps the team.",
            "Many open roles can mean growth or churn; ask how long the roles have been open.",
            "Lead with what you do and for whom, then one result you're proud of.",
            "Keep answers under two minutes and end with what you learned.",
        ),
        slots={},
    ),
    Topic(
        "language",
        asks=(
            "What's the fastest way to build vocabulary in a new language?",
            "Are language apps actually enough to get conversational?",
            "How do I get over the fear of speaking a new language with native speakers?",
            "Can you give me a study plan for twenty minutes a day?",
        ),
        follows=(
            "What about grammar?",
            "How long until I can hold a conversation?",
            "Any good resources for listening practice?",
        ),
        tips=(
            "Spaced-repetition flashcards with sentences rather than single words work well.",
            "Apps are great for habit and vocabulary but you'll need real conversations too.",
            "Start with low-stakes chats, like a tutor or a language exchange partner.",
            "Split twenty minutes into ten of flashcards, five of listening and five of speaking "
            "out loud.",
            "Kids' shows and slow news podcasts are good listening practice at the start.",
            "Most people reach basic conversation after a few hundred hours of steady practice.",
        ),
        slots={},
    ),
    Topic(
        "pets",
        asks=(
            "How do I stop a dog from pulling on the leash?",
            "How often should a cat go to the vet for checkups?",
            "What human foods are toxic for pets?",
            "Any tips for keeping pets calm during fireworks?",
        ),
        follows=(
            "What if that doesn't work?",
            "Is that different for older animals?",
            "How long does training usually take?",
        ),
        tips=(
            "Stop walking whenever the leash goes tight and reward them for coming back to your "
            "side.",
            "A yearly checkup is typical for adult cats, twice a year for seniors.",
            "Chocolate, grapes, onions, garlic and xylitol are all dangerous for dogs and cats.",
            "A quiet room with background noise and a favorite blanket helps during fireworks.",
            "Short, frequent training sessions work better than long ones.",
            "Pet insurance is cheapest when the animal is young and healthy.",
        ),
        slots={},
    ),
)

USER_SMALL_TALK = (
    "Thanks, that's really helpful!",
    "Haha fair enough.",
    "Ok, let me think about it.",
    "Perfect, thank you.",
    "Hmm, not sure that works for me, but I'll try.",
    "Sorry, got distracted for a minute. Where were we?",
    "That makes sense.",
    "Great, I'll give that a go tonight.",
    "Oh nice, I didn't know that.",
    "Cool. One more thing though.",
    "Honestly today has been a lot.",
    "Ok that's enough planning for one day.",
)
ASSISTANT_SMALL_TALK = (
    "You're welcome! Let me know how it goes.",
    "Happy to help. Anything else on your mind?",
    "No rush at all, take your time.",
    "Sounds good. I'm here whenever you want to pick this up again.",
    "Glad it was useful!",
    "Of course. What's the other thing?",
    "That's completely understandable. Want to keep it short today?",
)
GREETINGS_USER = (
    "Hi! Got a few minutes?",
    "Hey, morning!",
    "Hello again.",
    "Hi there, quick one today.",
    "Good evening! I need some help with something.",
    "Hey, it's me again.",
)
GREETINGS_ASSISTANT = (
    "Hi {name}! Of course, what's up?",
    "Good to hear from you, {name}. How can I help?",
    "Hello! What are we working on today?",
    "Hey {name}! Ready when you are.",
)
OPENERS_USER = (
    "Hope your day is going well.",
    "I'm finally sitting down after a long day.",
    "Got a couple of things to sort out today.",
    "Quick question before I forget.",
)
OPENERS_ASSISTANT = (
    "Sure thing, ask away.",
    "Of course, what's the question?",
    "I'm listening. What do you need?",
)
CONNECTORS = ("Anyway, ", "Also, ", "Separate question: ", "On another note, ", "", "But ")

# ---- facts ----------------------------------------------------------------------------------


@dataclass
class AskSpec:
    kind: str
    text: str
    answer: str
    statements: tuple[int, ...]  # indices into FactPlan.statements


@dataclass
class FactPlan:
    """One fact's statements (chronological), what is said near it, and what is asked about it."""

    key: str
    statements: list[str]
    acks: list[str]  # the assistant's reply to each user statement
    distractors: list[str]
    asks: list[AskSpec]
    role: str = "user"  # "assistant": the statement is the assistant's reply to `prompts`
    prompts: list[str] = field(default_factory=list)


def _c(rng: random.Random, options: Sequence[str], **values: str) -> str:
    return rng.choice(options).format(**values)


def _others(rng: random.Random, pool: Sequence[str], exclude: Sequence[str], n: int) -> list[str]:
    return rng.sample([x for x in pool if x not in exclude], n)


def _mentions(rng: random.Random, options: Sequence[str], **values: str) -> list[str]:
    """Two or three remarks about the fact's subject that do not give its value."""
    return [o.format(**values) for o in rng.sample(options, min(len(options), rng.randint(2, 3)))]


def _day(day: int) -> str:
    """'the 3rd', 'the 21st': how people name a day of the month."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"the {day}{suffix}"


def fact_home_city(rng: random.Random, name: str) -> FactPlan:
    n = 3 if rng.random() < 0.25 else 2
    cities = rng.sample(CITIES, n + 3)
    values, other = cities[:n], cities[n:]
    first = _c(
        rng,
        (
            "Quick context: I live in {city}, so anything local should be around there.",
            "We're in {city} and the weather has been all over the place lately.",
            "I've been in {city} for about {years} years now and I still get lost downtown.",
            "Living in {city} means everything is expensive, so I'm trying to cut costs.",
        ),
        city=values[0],
        years=str(rng.randint(2, 9)),
    )
    moves = [
        _c(
            rng,
            (
                "Big news: we finally moved to {city}! The boxes are everywhere.",
                "Just a heads-up, I relocated from {old} to {city} last weekend, so my commute is "
                "totally different now.",
                "Now that I'm living in {city}, I need to find a new dentist and a gym.",
                "The move is done. New apartment in {city}, and I already love the neighborhood.",
            ),
            city=values[i],
            old=values[i - 1],
        )
        for i in range(1, n)
    ]
    acks = [
        _c(
            rng,
            ("Good to know, I'll keep {city} in mind for local suggestions.", "Got it!"),
            city=values[0],
        ),
        *[
            _c(
                rng,
                (
                    "Congrats on the move! Settling in always takes a while.",
                    "Exciting! {city} is a great place to land.",
                    "Moving is exhausting. Take it one room at a time.",
                ),
                city=values[i],
            )
            for i in range(1, n)
        ],
    ]
    distractors = [
        f"My friend {rng.choice(NAMES)} just moved to {other[0]} and keeps sending me photos.",
        _c(
            rng,
            (
                "I was reading about how expensive rent is getting in {city}.",
                "My colleague keeps telling me I should move to {city}.",
                "Thinking about visiting {city} someday, it looks lovely.",
            ),
            city=other[1],
        ),
        "Moving apartments is the worst. Remind me never to buy this much furniture again.",
    ]
    last = n - 1
    asks = [
        AskSpec(
            "updated",
            _c(
                rng,
                (
                    "Which city do I live in these days?",
                    "Where am I living now?",
                    "Remind me what city I'm based in at the moment?",
                ),
            ),
            values[last],
            (last,),
        )
    ]
    if rng.random() < 0.5:
        asks.append(
            AskSpec(
                "changed",
                "Where did I live before my most recent move, and where did I move to?",
                f"{values[last - 1]} -> {values[last]}",
                (last - 1, last),
            )
        )
    distractors += _mentions(
        rng,
        (
            "The traffic in my city has been terrible this week.",
            "Our neighborhood has a farmers market on Saturdays, the best part of living here.",
            "I love where I live but the winters are long.",
            "Rent went up again at my place, so the budget is tight.",
            "Should I get a bike for getting around town?",
        ),
    )
    return FactPlan("home_city", [first, *moves], acks, distractors, asks)


def fact_job(rng: random.Random, name: str) -> FactPlan:
    companies = rng.sample(COMPANIES, 4)
    roles = rng.sample(ROLES, 3)
    first = _c(
        rng,
        (
            "For context, I'm a {role} at {company}, so my days are mostly meetings.",
            "I work as a {role} for {company} and this week has been brutal.",
            "Work at {company} is busy; being a {role} there means a lot of context switching.",
        ),
        role=roles[0],
        company=companies[0],
    )
    second = _c(
        rng,
        (
            "I accepted the offer! Starting next Monday as a {role} at {company}.",
            "First week at {company} done. Being a {role} there is a big change from my old job.",
            "I finally handed in my notice. Next month I start as a {role} at {company}.",
        ),
        role=roles[1],
        company=companies[1],
    )
    acks = [
        "Thanks for the context, that helps me tailor things.",
        _c(rng, ("Congratulations on the new role!", "That's a big step, congrats!")),
    ]
    distractors = [
        f"My brother-in-law just got hired at {companies[2]} as a {roles[2]}.",
        f"{companies[3]} has been in the news a lot lately, layoffs apparently.",
        f"A recruiter from {companies[2]} reached out about a {roles[2]} role but I ignored it.",
    ]
    asks = [
        AskSpec(
            "updated",
            _c(
                rng,
                (
                    "Where do I work right now?",
                    "What's my current job?",
                    "Which company am I working for these days?",
                ),
            ),
            companies[1],
            (1,),
        )
    ]
    if rng.random() < 0.5:
        asks.append(
            AskSpec(
                "changed",
                "How has my job situation changed recently?",
                f"{companies[0]} -> {companies[1]}",
                (0, 1),
            )
        )
    distractors += _mentions(
        rng,
        (
            "My manager moved our one-on-one again, third time this month.",
            "Work has been nonstop, we have three launches coming up.",
            "I'm thinking about asking for a raise at work.",
            "My coworkers want to do a team lunch, any ideas for a place?",
        ),
    )
    return FactPlan("job", [first, second], acks, distractors, asks)


def fact_sibling(rng: random.Random, name: str) -> FactPlan:
    rel = rng.choice(SIBLINGS)
    sname, cousin, other = _others(rng, NAMES, [name], 3)
    city, city2, city3 = rng.sample(CITIES, 3)
    statement = _c(
        rng,
        (
            "My {rel} {sname} lives in {city}, and I'm visiting for a long weekend soon.",
            "I'm trying to get something nice for my {rel} {sname}. It has to ship to {city}, "
            "that's where {sname} lives.",
            "I'll be offline Friday, driving to {city} to see my {rel} {sname}. They've lived "
            "there for years.",
        ),
        rel=rel,
        sname=sname,
        city=city,
    )
    distractors = [
        f"My cousin {cousin} lives in {city2} and wants me to visit this summer.",
        _c(
            rng,
            (
                "My {rel} {sname} is coming over next week, so the place needs cleaning.",
                "Talked to my {rel} {sname} on the phone for two hours last night.",
            ),
            rel=rel,
            sname=sname,
        ),
        f"{other}, a friend from college, just moved to {city3} for grad school.",
    ]
    asks = [
        AskSpec(
            "static",
            _c(
                rng,
                (
                    "Where does my {rel} live?",
                    "Which city is {sname} in again?",
                    "Remind me where my {rel} is based?",
                ),
                rel=rel,
                sname=sname,
            ),
            city,
            (0,),
        )
    ]
    acks = [_c(rng, ("That sounds lovely, enjoy the visit!", "Noted, I'll keep that in mind."))]
    distractors += _mentions(
        rng,
        (
            "My {rel} and I are planning a surprise for our mom's birthday.",
            "{sname} sent me a hilarious video today, my {rel} is the funniest person I know.",
            "I should call my {rel} more often, it's been weeks.",
        ),
        rel=rel,
        sname=sname,
    )
    return FactPlan("sibling", [statement], acks, distractors, asks)


def fact_allergy(rng: random.Random, name: str) -> FactPlan:
    allergen, other1, other2 = rng.sample(ALLERGENS, 3)
    statement = _c(
        rng,
        (
            "One thing to keep in mind: I'm allergic to {a}, so skip anything with it.",
            "Just so you know, {a} is a hard no for me. I'm allergic.",
            "I had a reaction at a restaurant last year, turns out I'm allergic to {a}.",
        ),
        a=allergen,
    )
    distractors = [
        f"My friend {rng.choice(NAMES)} is allergic to {other1}, so the party menu is tricky.",
        f"My nephew can't eat {other2} either, his school is very strict about it.",
        f"I watched a documentary about how {other1} are farmed, pretty eye-opening.",
    ]
    text, kind = rng.choice(
        [
            ("What food allergy do I have?", "static"),
            ("Is there any food I need to avoid for medical reasons?", "static"),
            ("Can you suggest a dinner recipe for tonight that's safe for me?", "preference"),
            ("I'm ordering takeout for myself. Anything I should steer clear of?", "preference"),
        ]
    )
    acks = [f"Noted, I'll avoid {allergen} in any suggestions."]
    distractors += _mentions(
        rng,
        (
            "I have to read every food label really carefully, it's exhausting.",
            "Restaurants never take allergies seriously enough.",
            "Eating out with friends is stressful because of my allergy.",
        ),
    )
    return FactPlan(
        "allergy", [statement], acks, distractors, [AskSpec(kind, text, allergen, (0,))]
    )


def fact_pets(rng: random.Random, name: str) -> FactPlan:
    species = rng.sample(SPECIES, 3)
    pets = rng.sample(PET_NAMES, 3)
    first = _c(
        rng,
        (
            "We adopted a {s} named {p} from the shelter this weekend!",
            "Sorry if I'm slow today, my {s} {p} kept me up all night.",
        ),
        s=species[0],
        p=pets[0],
    )
    second = _c(
        rng,
        (
            "Update on the household: we brought home a second pet, a {s} called {p}.",
            "We have a new addition! A {s} named {p}. {old} is not impressed yet.",
        ),
        s=species[1],
        p=pets[1],
        old=pets[0],
    )
    distractors = [
        f"My neighbor's {species[2]} {pets[2]} keeps getting into our yard.",
        f"I'm pet-sitting my friend's {species[2]} this weekend, wish me luck.",
    ]
    asks = [
        AskSpec(
            "multi",
            rng.choice(
                ["What pets do I have, and what are their names?", "What are my pets called?"]
            ),
            f"{pets[0]} and {pets[1]}",
            (0, 1),
        )
    ]
    acks = ["Aww, congratulations!", "That's adorable. How are they settling in?"]
    distractors += _mentions(
        rng,
        (
            "The vet bill this month was ridiculous.",
            "Pets make working from home so much better.",
            "I need to buy more pet food on the way home.",
        ),
    )
    return FactPlan("pets", [first, second], acks, distractors, asks)


def fact_deadline(rng: random.Random, name: str) -> FactPlan:
    project, project2 = rng.sample(PROJECTS, 2)
    days = rng.sample(range(1, 29), 4)
    dates = [_day(d) for d in days]
    first = _c(
        rng,
        (
            "The {p} is due on {d}, so I'm a bit stressed.",
            "I need to finish the {p} by {d}. Can we keep things quick today?",
        ),
        p=project,
        d=dates[0],
    )
    later = days[1] > days[0]
    second = _c(
        rng,
        (
            "Good news, they pushed the {p} deadline back to {d}, which gives me some room."
            if later
            else "Bad news: the {p} deadline got moved up to {d}.",
            "Heads up, the {p} is now due on {d} instead.",
        ),
        p=project,
        d=dates[1],
    )
    distractors = [
        f"My teammate's {project2} is due on {dates[2]}, so the office will be chaos.",
        f"The {project} kickoff meeting was on {dates[3]}, feels like ages ago.",
        "Taxes are due soon too, ugh. Everything at once.",
    ]
    asks = [
        AskSpec(
            "updated",
            _c(
                rng,
                ("When is the {p} due now?", "What's the current deadline for my {p}?"),
                p=project,
            ),
            dates[1],
            (1,),
        )
    ]
    if rng.random() < 0.5:
        asks.append(
            AskSpec(
                "changed",
                f"How did the deadline for the {project} change?",
                f"{dates[0]} -> {dates[1]}",
                (0, 1),
            )
        )
    acks = [
        "That's tight but doable. Let's prioritize.",
        "That helps, a little more slack." if later else "Ouch. Let's re-plan the week.",
    ]
    distractors += _mentions(
        rng,
        (
            "The {p} is eating my whole week.",
            "My manager asked for an update on the {p} this morning.",
            "I still haven't started the slides for the {p}.",
        ),
        p=project,
    )
    return FactPlan("deadline", [first, second], acks, distractors, asks)


def fact_instrument(rng: random.Random, name: str) -> FactPlan:
    instrument, other = rng.sample(INSTRUMENTS, 2)
    teacher = rng.choice([n for n in NAMES if n != name])
    statement = _c(
        rng,
        (
            "I started taking {i} lessons with a teacher named {t} on {w}s.",
            "My {i} teacher, {t}, says I need to practice scales every day.",
        ),
        i=instrument,
        t=teacher,
        w=rng.choice(WEEKDAYS),
    )
    distractors = [
        f"My nephew is learning {other} and practices at all hours.",
        "Went to a concert last night, the orchestra was amazing.",
    ]
    asks = [
        AskSpec(
            "static",
            rng.choice(
                [
                    "What instrument am I learning, and who teaches me?",
                    "Who is my music teacher?",
                ]
            ),
            f"{instrument} with {teacher}",
            (0,),
        )
    ]
    distractors += _mentions(
        rng,
        (
            "My fingers hurt from practicing last night.",
            "I found some sheet music at a flea market, so cheap.",
            "Music lessons are the highlight of my week.",
        ),
    )
    return FactPlan("instrument", [statement], ["That's wonderful, enjoy it!"], distractors, asks)


def fact_trip(rng: random.Random, name: str) -> FactPlan:
    dests = rng.sample(DESTINATIONS, 4)
    month = rng.choice(MONTHS)
    first = _c(
        rng,
        (
            "We're planning a trip to {d} in {m}, our first real vacation in years.",
            "I just booked flights to {d} for {m}!",
        ),
        d=dests[0],
        m=month,
    )
    second = _c(
        rng,
        (
            "Change of plans: we're going to {d} instead, still in {m}.",
            "We cancelled {old}. Flights were too much, so it's {d} in {m} now.",
        ),
        d=dests[1],
        m=month,
        old=dests[0],
    )
    distractors = [
        f"My boss just came back from {dests[2]} and won't stop talking about it.",
        f"Have you heard anything good about {dests[3]}? A friend is going.",
    ]
    asks = [
        AskSpec(
            "updated",
            rng.choice(
                [
                    "Where am I going on my upcoming trip?",
                    "What's the destination of my next vacation?",
                ]
            ),
            dests[1],
            (1,),
        )
    ]
    acks = ["How exciting! Let me know if you want help planning.", "Oh, good choice."]
    distractors += _mentions(
        rng,
        (
            "I still need to renew my passport before the trip.",
            "Is travel insurance worth it for a two-week vacation?",
            "I'm counting down the days until our vacation.",
        ),
    )
    return FactPlan("trip", [first, second], acks, distractors, asks)


def fact_car(rng: random.Random, name: str) -> FactPlan:
    cars = rng.sample(CARS, 3)
    first = f"My {cars[0]} is making a weird noise again, I swear it's always something."
    second = _c(
        rng,
        (
            "I finally traded in the old car and got a {c}.",
            "Picked up my new {c} today! Goodbye, {old}.",
        ),
        c=cars[1],
        old=cars[0],
    )
    distractors = [f"My dad is thinking about buying a {cars[2]}.", "Gas prices are wild again."]
    asks = [AskSpec("updated", "What car do I drive now?", cars[1], (1,))]
    acks = ["That sounds annoying, maybe get it checked.", "Nice, enjoy the new car!"]
    distractors += _mentions(
        rng,
        (
            "The car needs new tires before winter.",
            "Parking downtown is impossible, I circled for twenty minutes.",
            "Someone dinged my car door in the grocery store parking lot.",
        ),
    )
    return FactPlan("car", [first, second], acks, distractors, asks)


def fact_race(rng: random.Random, name: str) -> FactPlan:
    race = rng.choice(list(RACES))
    t1, t2 = rng.sample(RACES[race], 2)
    first = f"I signed up for a {race} in the fall and I'm aiming to finish in {t1}."
    second = _c(
        rng,
        (
            "Training is going well, so I'm changing my {r} goal to {t}.",
            "New plan for the {r}: I'm targeting {t} now.",
        ),
        r=race,
        t=t2,
    )
    distractors = [
        f"My running buddy {rng.choice(NAMES)} ran her {race} in {t1} last year.",
        "I skipped my long run this weekend, it was pouring.",
    ]
    asks = [AskSpec("updated", f"What's my goal time for the {race}?", t2, (1,))]
    acks = ["That's a great goal.", "Love that, let's adjust the training plan."]
    distractors += _mentions(
        rng,
        (
            "My long run this weekend was 18 kilometers, I'm wrecked.",
            "My training plan says intervals on Tuesday, not looking forward to it.",
            "Race day is getting closer, I'm getting nervous.",
        ),
    )
    return FactPlan("race", [first, second], acks, distractors, asks)


def fact_partner(rng: random.Random, name: str) -> FactPlan:
    rel = rng.choice(PARTNERS)
    pname, friend = _others(rng, NAMES, [name], 2)
    role, role2 = rng.sample(ROLES, 2)
    statement = _c(
        rng,
        (
            "My {rel} {p} works as a {r}, so our schedules rarely line up.",
            "{p}, my {rel}, just started night shifts as a {r}.",
        ),
        rel=rel,
        p=pname,
        r=role,
    )
    distractors = [
        f"My friend {friend}'s husband is a {role2} and loves it.",
        f"My {rel} and I finally watched that show everyone talks about.",
    ]
    asks = [
        AskSpec("static", f"What does my {rel} do for a living?", role, (0,)),
    ]
    distractors += _mentions(
        rng,
        (
            "My {rel} and I are arguing about paint colors for the living room.",
            "{p} surprised me with dinner last night.",
            "My {rel} works such long hours lately.",
        ),
        rel=rel,
        p=pname,
    )
    return FactPlan("partner", [statement], ["Got it, thanks!"], distractors, asks)


def fact_kid(rng: random.Random, name: str) -> FactPlan:
    rel = rng.choice(KIDS)
    kid = rng.choice([n for n in NAMES if n != name])
    school, school2 = rng.sample(SCHOOLS, 2)
    statement = f"My {rel} {kid} just started at {school}, and drop-off is chaos every morning."
    distractors = [
        f"My neighbor's kids go to {school2} and love it.",
        f"{kid} has a school play next week, I need to make a costume.",
    ]
    asks = [AskSpec("static", f"Which school does my {rel} go to?", school, (0,))]
    distractors += _mentions(
        rng,
        (
            "{kid} lost another water bottle at school.",
            "Parent-teacher conferences are next week.",
            "My {rel} needs new shoes again, they grow so fast.",
        ),
        kid=kid,
        rel=rel,
    )
    return FactPlan(
        "kid", [statement], ["That's a big change, hope it goes well!"], distractors, asks
    )


def fact_appointment(rng: random.Random, name: str) -> FactPlan:
    kind, kind2 = rng.sample(APPOINTMENTS, 2)
    date, date2 = (_day(d) for d in rng.sample(range(1, 29), 2))
    time = rng.choice(["9:30", "11:00", "2:15", "4:45", "8:00"])
    statement = f"Can you remind me later? I've got a {kind} appointment on {date} at {time}."
    distractors = [
        f"My mom's {kind} appointment got moved to {date2}.",
        f"I really need to book a {kind2} appointment at some point.",
    ]
    asks = [AskSpec("static", f"When is my {kind} appointment?", f"{date} {time}", (0,))]
    distractors += _mentions(
        rng,
        (
            "I hate going to the {kind}, I get so nervous.",
            "My insurance barely covers anything, the {kind} visit will cost a fortune.",
            "I need to remember to bring my insurance card next time.",
        ),
        kind=kind,
    )
    return FactPlan("appointment", [statement], ["Noted, I'll remember that."], distractors, asks)


def fact_book_club(rng: random.Random, name: str) -> FactPlan:
    books = rng.sample(BOOKS, 4)
    first = f"Our book club picked {books[0]} for this month, I'm only a few chapters in."
    second = _c(
        rng,
        (
            "Book club switched to {b} this month, nobody finished the last one.",
            "We're reading {b} for book club now.",
        ),
        b=books[1],
    )
    distractors = [
        f"My coworker lent me {books[2]}, not sure when I'll get to it.",
        f"Have you read {books[3]}? Everyone keeps recommending it.",
    ]
    asks = [
        AskSpec(
            "updated",
            rng.choice(
                [
                    "Which book is my book club reading at the moment?",
                    "What's the current book club pick?",
                ]
            ),
            books[1],
            (1,),
        )
    ]
    distractors += _mentions(
        rng,
        (
            "Book club is at my place this time, I need snacks.",
            "I'm so behind on the book club reading.",
            "Someone in book club always spoils the ending.",
        ),
    )
    return FactPlan(
        "book_club", [first, second], ["Nice pick!", "Ha, that happens."], distractors, asks
    )


def fact_language(rng: random.Random, name: str) -> FactPlan:
    language, other = rng.sample(LANGUAGES, 2)
    statement = _c(
        rng,
        (
            "I'm learning {l} on the side, about twenty minutes a day.",
            "I've been practicing {l} with an app every morning on the train.",
        ),
        l=language,
    )
    distractors = [
        f"My coworker speaks fluent {other}, I'm so jealous.",
        "Languages are hard. I keep forgetting the words I learned last week.",
    ]
    asks = [AskSpec("static", "What language am I studying?", language, (0,))]
    distractors += _mentions(
        rng,
        (
            "My streak on the language app is at 40 days!",
            "Grammar is killing me, the verb endings make no sense.",
            "I want to find a conversation partner to practice with.",
        ),
    )
    return FactPlan("language", [statement], ["That's a great habit!"], distractors, asks)


def fact_coffee(rng: random.Random, name: str) -> FactPlan:
    coffee, other = rng.sample(COFFEES, 2)
    statement = f"My usual order at the cafe is a {coffee}, I'm very predictable."
    distractors = [
        f"My {rng.choice(SIBLINGS)} always orders a {other}, which I don't get at all.",
        "I should probably cut back on caffeine.",
    ]
    asks = [
        AskSpec(
            "preference",
            "I'm heading to the cafe, what should I order for myself?",
            coffee,
            (0,),
        )
    ]
    distractors += _mentions(
        rng,
        (
            "I need coffee before I can function in the morning.",
            "The new cafe on the corner has really good pastries.",
        ),
    )
    return FactPlan("coffee", [statement], ["Ha, a classic."], distractors, asks)


def fact_podcast(rng: random.Random, name: str) -> FactPlan:
    topic, other_topic = rng.sample(PODCAST_TOPICS, 2)
    title, other_title = rng.sample(PODCAST_TITLES, 2)
    prompt = _c(
        rng,
        (
            "Can you recommend a podcast about {t}?",
            "I need something to listen to on my commute. Anything good about {t}?",
        ),
        t=topic,
    )
    statement = (
        f"You might enjoy '{title}'. It covers {topic} in short, approachable episodes, and the "
        "host is great at explaining the basics without being boring."
    )
    distractors = [
        f"My friend keeps talking about a podcast called '{other_title}' on {other_topic}.",
        "I've been listening to way too many podcasts lately.",
    ]
    asks = [
        AskSpec(
            "assistant",
            f"What was the podcast you recommended to me about {topic}?",
            title,
            (0,),
        )
    ]
    distractors += _mentions(
        rng,
        (
            "I finally started listening to podcasts on my commute.",
            "I go through so many podcast episodes at the gym.",
        ),
    )
    return FactPlan(
        "podcast", [statement], [], distractors, asks, role="assistant", prompts=[prompt]
    )


def fact_leftovers(rng: random.Random, name: str) -> FactPlan:
    ingredient, other = rng.sample(list(LEFTOVERS), 2)
    dish = rng.choice(LEFTOVERS[ingredient])
    prompt = f"I have a ton of leftover {ingredient}. Any idea what to make with it?"
    statement = (
        f"How about {dish}? It uses up a good amount of {ingredient}, takes about half an hour, "
        "and the leftovers make a solid lunch the next day."
    )
    distractors = [
        f"I always end up with leftover {other} and never know what to do with it.",
        f"The {rng.choice(LEFTOVERS[other])} I made last week was a disaster, don't ask.",
    ]
    asks = [
        AskSpec(
            "assistant",
            f"What dish did you suggest for using up my leftover {ingredient}?",
            dish,
            (0,),
        )
    ]
    distractors += _mentions(
        rng,
        (
            "My fridge is full of leftovers again.",
            "I hate wasting food, I always cook too much.",
        ),
    )
    return FactPlan(
        "leftovers", [statement], [], distractors, asks, role="assistant", prompts=[prompt]
    )


FACTS: tuple[Callable[[random.Random, str], FactPlan], ...] = (
    fact_home_city,
    fact_job,
    fact_sibling,
    fact_allergy,
    fact_pets,
    fact_deadline,
    fact_instrument,
    fact_trip,
    fact_car,
    fact_race,
    fact_partner,
    fact_kid,
    fact_appointment,
    fact_book_club,
    fact_language,
    fact_coffee,
    fact_podcast,
    fact_leftovers,
)

# ---- assembly -------------------------------------------------------------------------------


@dataclass
class _Insert:
    """Text placed into a session: a user statement (with an ack) or an assistant statement."""

    role: str
    text: str
    reply: str  # the assistant's reply (user insert) or the user's prompt (assistant insert)
    tag: tuple[str, int] | None  # (fact key, statement index) for evidence


def _fill(rng: random.Random, template: str, slots: dict[str, Sequence[str]]) -> str:
    names = dict.fromkeys(re.findall(r"{(\w+)}", template))  # ordered: same draws every run
    return template.format(**{k: rng.choice(slots[k]) for k in names})


def _join(first: str, second: str, rng: random.Random) -> str:
    """One user message: a personal remark, then a request (or the reverse)."""
    connector = rng.choice(CONNECTORS)
    if connector and not second.startswith(("I ", "I'")):
        second = second[0].lower() + second[1:]
    if rng.random() < 0.7:
        return f"{first} {connector}{second}" if connector else f"{first} {second}"
    return f"{second} {first}"


def _assistant_answer(rng: random.Random, topic: Topic) -> str:
    count = rng.randint(2, 4)
    sentences = [_fill(rng, t, topic.slots) for t in rng.sample(topic.tips, count)]
    lead = rng.choice(["", "", "Good question. ", "Sure! ", "Here's what I'd do. ", "Ideas: "])
    tail = rng.choice(["", "", " Want me to go into more detail?", " Does that help?"])
    return lead + " ".join(sentences) + tail


def _session_pairs(
    rng: random.Random, name: str, inserts: list[_Insert]
) -> list[tuple[str, str, tuple[str, int] | None, str]]:
    """(user text, assistant text, evidence tag, evidence role) pairs for one session."""
    topics = rng.sample(TOPICS, rng.choice([1, 2, 2, 3]))
    pairs: list[tuple[str, str, tuple[str, int] | None, str]] = []
    if rng.random() < 0.7:
        greeting = _c(rng, GREETINGS_ASSISTANT, name=name)
        pairs.append((rng.choice(GREETINGS_USER), greeting, None, ""))
    body = rng.randint(8, 18)
    unasked = {topic.name: rng.sample(topic.asks, len(topic.asks)) for topic in topics}
    plan: list[tuple[str, str]] = []
    for index in range(body):
        topic = topics[min(len(topics) - 1, index * len(topics) // body)]
        roll = rng.random()
        if (roll < 0.55 or not plan) and unasked[topic.name]:
            user = _fill(rng, unasked[topic.name].pop(), topic.slots)
        elif roll < 0.8:
            user = _fill(rng, rng.choice(topic.follows), topic.slots)
        else:
            plan.append((rng.choice(USER_SMALL_TALK), rng.choice(ASSISTANT_SMALL_TALK)))
            continue
        plan.append((user, _assistant_answer(rng, topic)))
    merged: list[tuple[str, str, tuple[str, int] | None, str]] = [(u, a, None, "") for u, a in plan]
    for insert in inserts:
        position = rng.randint(0, len(merged))
        if insert.role == "assistant":
            merged.insert(position, (insert.reply, insert.text, insert.tag, "assistant"))
            continue
        if position < len(merged) and merged[position][2] is None and rng.random() < 0.6:
            user, assistant, _, _ = merged[position]
            text = _join(insert.text, user, rng)
            merged[position] = (text, f"{insert.reply} {assistant}", insert.tag, "user")
        else:
            merged.insert(position, (insert.text, insert.reply, insert.tag, "user"))
    return pairs + merged


def _schedule(rng: random.Random, count: int, sessions: int) -> list[int]:
    """`count` distinct sessions, in increasing order."""
    return sorted(rng.sample(range(sessions), count))


def _persona(
    rng: random.Random, index: int, sessions: int, facts_per_persona: int, end: datetime
) -> Persona:
    persona_id = f"p{index:02d}"
    user_id = f"user-{persona_id}"
    name = rng.choice(NAMES)
    chosen = rng.sample(FACTS, min(facts_per_persona, len(FACTS)))
    plans = [make(rng, name) for make in chosen]

    inserts: dict[int, list[_Insert]] = {s: [] for s in range(sessions)}
    for plan in plans:
        for position, session in enumerate(_schedule(rng, len(plan.statements), sessions)):
            if plan.role == "assistant":
                reply = plan.prompts[position]
            else:
                reply = plan.acks[position] if position < len(plan.acks) else "Got it."
            text = plan.statements[position]
            inserts[session].append(_Insert(plan.role, text, reply, (plan.key, position)))
        for distractor in plan.distractors:
            reply = rng.choice(["Ha, I see.", "Oh, interesting.", "Got it.", "Makes sense."])
            inserts[rng.randrange(sessions)].append(_Insert("user", distractor, reply, None))

    # Timeline: sessions 2-12 days apart, turns seconds to minutes apart; then the whole history
    # is shifted by whole days so that it ends one to two days before the questions.
    origin = datetime(2000, 1, 1, tzinfo=UTC)
    evidence: dict[tuple[str, int], str] = {}
    drafts: list[tuple[str, datetime, list[tuple[str, str, datetime, bool]]]] = []
    cursor = origin
    for s in range(sessions):
        day = cursor + timedelta(days=rng.randint(2, 12))
        started = day.replace(hour=rng.randint(7, 21), minute=rng.randint(0, 59))
        session_id = f"{persona_id}-s{s:02d}"
        clock = started
        draft: list[tuple[str, str, datetime, bool]] = []
        for user, assistant, tag, role in _session_pairs(rng, name, inserts[s]):
            for speaker, text in (("user", user), ("assistant", assistant)):
                turn_id = f"{session_id}-t{len(draft):03d}"
                if tag is not None and speaker == role:
                    evidence[tag] = turn_id
                draft.append((speaker, text, clock, tag is not None and speaker == role))
                clock += timedelta(seconds=rng.randint(20, 240))
        drafts.append((session_id, started, draft))
        cursor = clock
    shift = timedelta(days=((end - timedelta(days=1)) - cursor) // timedelta(days=1))
    built = [
        Session(
            session_id,
            persona_id,
            started + shift,
            tuple(
                Turn(f"{session_id}-t{i:03d}", session_id, speaker, text, at + shift)
                for i, (speaker, text, at, _) in enumerate(draft)
            ),
        )
        for session_id, started, draft in drafts
    ]

    questions: list[Question] = []
    asked = end - timedelta(hours=2)
    for plan in plans:
        for ask in plan.asks:
            q_index = len(questions)
            thread_id = f"{persona_id}-q{q_index:02d}"
            opening = _opening(rng, name, thread_id, asked)
            questions.append(
                Question(
                    id=f"{persona_id}-q{q_index:02d}",
                    persona_id=persona_id,
                    user_id=user_id,
                    thread_id=thread_id,
                    kind=ask.kind,
                    fact=plan.key,
                    text=ask.text,
                    answer=ask.answer,
                    evidence=tuple(evidence[(plan.key, i)] for i in ask.statements),
                    asked_at=asked,
                    opening=opening,
                )
            )
    return Persona(persona_id, user_id, name, tuple(built), tuple(questions))


def _opening(rng: random.Random, name: str, thread_id: str, asked: datetime) -> tuple[Turn, ...]:
    """The small talk that opens a question's thread, ending a minute before the question."""
    texts = [
        ("user", rng.choice(GREETINGS_USER)),
        ("assistant", _c(rng, GREETINGS_ASSISTANT, name=name)),
    ]
    if rng.random() < 0.5:
        texts += [("user", rng.choice(OPENERS_USER)), ("assistant", rng.choice(OPENERS_ASSISTANT))]
    start = asked - timedelta(minutes=len(texts) + 1)
    return tuple(
        Turn(f"{thread_id}-t{i:03d}", thread_id, role, text, start + timedelta(minutes=i))
        for i, (role, text) in enumerate(texts)
    )


def generate(
    seed: int = 7,
    personas: int = 10,
    sessions: tuple[int, int] = (6, 10),
    facts_per_persona: int = 16,
    end: datetime = DEFAULT_END,
) -> Conversations:
    """Conversations for `personas` users, each with a number of sessions in `sessions`
    (inclusive) and `facts_per_persona` facts; the questions are asked just before `end`."""
    if sessions[0] < 3 or sessions[1] < sessions[0]:
        raise ValueError("sessions must be a (low, high) range with low >= 3")
    rng = random.Random(seed)
    built = []
    for index in range(personas):
        count = rng.randint(*sessions)
        built.append(_persona(rng, index, count, facts_per_persona, end))
    return Conversations(seed, tuple(built))
