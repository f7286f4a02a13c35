"""Write the bundled sft-lab chat dataset: ``python -m tools.generate_data``.

The rows copy the schema of ``HuggingFaceH4/no_robots`` (prompt, prompt_id, messages, category) so the
notebooks run unchanged offline. Every assistant turn uses the lab's *house format*, a behaviour the base
model does not show by itself, so a short SFT run has something visible to learn:

    Answer: <one sentence>
    - <bullet>
    - <bullet>
    - <bullet>
    Confidence: high|medium|low

All text is written here (``KNOWLEDGE`` plus the templates below); a seeded ``random.Random`` picks and
combines it, so re-running gives byte-identical files. No network, no tokenizer.

``--style natural`` writes the same prompts with *natural* replies instead (``natural_reply``: prose, short answers,
numbered steps, asides, varied lengths; never the house format) to ``bundled_data/natural/``: the offline stand-in for
the real ``HuggingFaceH4/no_robots``, whose replies carry no house format either. It proves the real-data path:
the series runs on it and notebook 09 reports measures that need no format (reply loss, cut replies, length).
The last topic of each domain is held out: it appears only in ``test.jsonl`` (see ``HELD_OUT_TOPICS``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SEED = 1440  # the printing press; any fixed number works
N_TRAIN = 720  # rows in train.jsonl
N_TEST = 120  # rows in test.jsonl
SYSTEM_SHARE = 0.25  # share of rows that open with a system prompt
MULTI_TURN_SHARE = 0.25  # share of rows with 2-3 user/assistant exchanges
HELD_OUT_SHARE_OF_TEST = 0.5  # share of test rows about topics never seen in train
OUT_DIR = Path(__file__).resolve().parents[1] / "labhelpers" / "bundled_data"
STYLES = {"house": OUT_DIR, "natural": OUT_DIR / "natural"}  # reply style -> where its files go

# rows per category; test is train / 6
CATEGORY_COUNTS = {
    "Generation": 110, "Open QA": 110, "Brainstorm": 80, "Chat": 70, "Rewrite": 60,
    "Summarize": 70, "Coding": 40, "Classify": 55, "Closed QA": 70, "Extract": 55,
}
TEST_CATEGORY_COUNTS = {
    "Generation": 18, "Open QA": 18, "Brainstorm": 13, "Chat": 12, "Rewrite": 10,
    "Summarize": 12, "Coding": 7, "Classify": 9, "Closed QA": 12, "Extract": 9,
}

# Knowledge base. "## domain | what it covers", then per topic:
# "key | subject phrase | confidence", A: answer sentence, F: facts, T: practical tip, P: common pitfall.
KNOWLEDGE = r"""
## science | how the natural world works
photosynthesis | photosynthesis | high
A: Photosynthesis is how plants use light to turn water and carbon dioxide into sugar and oxygen.
F: It happens mainly in the chloroplasts of leaf cells.
F: Chlorophyll absorbs red and blue light and reflects green, which is why leaves look green.
F: The oxygen released comes from splitting water molecules.
F: The sugar made is used for energy and to build cellulose for growth.
T: Put a pot plant in a bright window and it will grow visibly faster than one in a dim corner.
P: Many people think plants get their mass from soil, but most of it comes from carbon dioxide in the air.
rainbows | how a rainbow forms | high
A: A rainbow forms when sunlight is bent, split into colours and reflected inside raindrops.
F: Each colour bends by a slightly different angle, so white light spreads into a band.
F: You only see a rainbow with the sun behind you and rain in front of you.
F: The main bow sits at about 42 degrees from the point opposite the sun.
F: A fainter second bow sometimes appears with its colours in reverse order.
T: Spray a garden hose with your back to a low afternoon sun to make your own rainbow.
P: People often look towards the sun for a rainbow, when it always appears on the opposite side of the sky.
boiling point | why water boils at a lower temperature on mountains | high
A: Water boils at a lower temperature on mountains because the air pressure pushing on it is lower.
F: At sea level pure water boils at about 100 degrees Celsius.
F: Boiling starts when the vapour pressure of the water matches the surrounding air pressure.
F: At 3000 metres water boils at roughly 90 degrees Celsius.
F: Pressure cookers do the opposite, raising the pressure so water gets hotter before boiling.
T: Add a few extra minutes when boiling pasta or eggs at high altitude.
P: A common mistake is thinking the water is hotter because it boils sooner, when it is actually cooler.
static electricity | static electricity | high
A: Static electricity is a build-up of electric charge on a surface that stays put until it can jump away.
F: Rubbing two materials together can move electrons from one to the other.
F: Dry winter air makes static shocks more common because moisture normally lets charge leak away.
F: The small spark you feel is the charge jumping to a conductor such as a door handle.
F: Lightning is the same effect on a very large scale.
T: Touch a metal key to a door handle first so the spark jumps from the key instead of your finger.
P: People often blame the carpet alone, when dry air matters just as much.
density | why some things float and others sink | high
A: An object floats when it is less dense than the liquid it is in, and sinks when it is denser.
F: Density is mass divided by volume.
F: A steel ship floats because its hollow shape holds a lot of air, lowering its average density.
F: Ice floats because water expands when it freezes.
F: Salt water is denser than fresh water, so swimmers float more easily in the sea.
T: Drop an egg in fresh water and then in very salty water to see density change the result.
P: Heavy things do not always sink; what matters is weight compared with the volume of water pushed aside.
vaccines | how vaccines train the immune system | high
A: Vaccines train the immune system by showing it a harmless version or piece of a germ so it can respond faster later.
F: The body makes antibodies and memory cells after vaccination.
F: Memory cells let the immune system react within days instead of weeks on a real infection.
F: Some vaccines need boosters because protection fades over time.
F: When enough people are immune, a disease spreads less easily to those who cannot be vaccinated.
T: Keep a simple record of your vaccinations and their dates so boosters are easy to plan.
P: A sore arm or mild fever after a shot is usually the immune system working, not the illness itself.
tides | what causes ocean tides | high
A: Ocean tides are caused mainly by the Moon's gravity pulling on the oceans as the Earth rotates.
F: Most coasts get two high tides and two low tides roughly every day.
F: The Sun also pulls on the oceans, but its effect is a little under half that of the Moon.
F: Spring tides, with the biggest range, happen when the Sun and Moon line up.
F: The shape of a coastline can make local tides much larger or smaller.
T: Check a local tide table before walking along a beach below cliffs.
P: Spring tides have nothing to do with the season; the name refers to the water springing up.
## cooking | preparing food
resting meat | why you should rest meat after cooking | high
A: Resting meat after cooking lets the juices settle so less of them run out when you slice it.
F: A steak usually needs about five minutes of rest, a large roast closer to twenty.
F: The temperature inside keeps rising a few degrees while the meat rests.
F: Loosely covering it with foil keeps it warm without steaming the crust.
F: Cutting against the grain after resting also makes meat feel more tender.
T: Take the meat off the heat a few degrees before your target temperature to allow for the rise while resting.
P: Slicing straight away is the most common reason for a dry steak and a puddle on the board.
bread dough | how to tell when bread dough is kneaded enough | high
A: Bread dough is kneaded enough when it is smooth and stretches thin without tearing.
F: Kneading develops gluten, the protein network that traps gas from the yeast.
F: The windowpane test means stretching a small piece until light shows through it.
F: By hand this usually takes about ten minutes of steady kneading.
F: Wet doughs can be built up with a few sets of folds instead of long kneading.
T: Oil your hands lightly instead of adding lots of flour, which can make the loaf dense.
P: Adding too much flour to stop stickiness is the usual cause of dry, heavy bread.
salting pasta water | salting pasta water | medium
A: Salting pasta water seasons the pasta from the inside, since pasta absorbs the water as it cooks.
F: A common guide is about ten grams of salt per litre of water.
F: Salt barely changes the boiling point at kitchen amounts.
F: Add the salt once the water is boiling so it dissolves quickly.
F: A cup of the starchy cooking water helps a sauce cling to the pasta.
T: Taste the water; it should be noticeably salty, a little less than the sea.
P: Adding oil to the water does not stop sticking and makes sauce slide off the pasta.
knife skills | basic knife safety in the kitchen | high
A: Safe knife work comes from a sharp blade, a stable board and fingertips tucked away from the edge.
F: A sharp knife is safer because it needs less force and slips less.
F: A damp towel under the cutting board stops it sliding.
F: The claw grip keeps your fingertips curled behind your knuckles.
F: Never try to catch a falling knife; step back and let it drop.
T: Cut round foods such as onions in half first so they sit flat on the board.
P: Dull knives cause more cuts than sharp ones because they skid off the surface of food.
caramelising onions | caramelising onions | high
A: Caramelising onions means cooking them slowly over low heat until their sugars turn brown and sweet.
F: Properly caramelised onions take thirty to forty-five minutes.
F: A pinch of salt draws out moisture and helps them soften.
F: A splash of water loosens the brown bits stuck to the pan.
F: A wide pan gives the onions room so they brown instead of steam.
T: Make a large batch and freeze it in small portions for soups and sandwiches.
P: Recipes that promise caramelised onions in ten minutes usually give you fried onions instead.
food storage | storing leftovers safely | high
A: Leftovers stay safe when they are cooled quickly, refrigerated within two hours and eaten within a few days.
F: Shallow containers help food cool faster than one deep pot.
F: Most cooked leftovers keep for three to four days in the fridge.
F: The fridge should run at 5 degrees Celsius or colder.
F: Reheated food should be steaming hot all the way through.
T: Write the date on containers with a bit of masking tape so you know what to eat first.
P: Leaving a big pot of soup on the stove overnight to cool lets bacteria grow.
eggs | telling whether an egg is fresh | medium
A: A fresh egg sinks and lies flat in a bowl of water, while an old egg stands up or floats.
F: An air pocket inside the egg grows as it ages.
F: Fresh eggs have firm whites that hold close to the yolk when cracked.
F: Older eggs are actually easier to peel after boiling.
F: A floating egg is not always bad, but it should be cracked and smelled before use.
T: Use older eggs for hard boiling and the freshest ones for poaching.
P: The colour of the shell says nothing about freshness or nutrition.
## programming | writing software
python lists | Python lists versus tuples | high
A: In Python a list can be changed after it is created, while a tuple cannot.
F: Lists use square brackets and tuples use round brackets.
F: Tuples can be used as dictionary keys because they are immutable.
F: Lists have methods such as append and sort that tuples lack.
F: A tuple is a good fit for a fixed record such as a pair of coordinates.
T: Reach for a tuple when the number of items is fixed and a list when it will grow.
P: Writing a one-item tuple as (x) instead of (x,) gives you just x, not a tuple.
git branches | git branches | high
A: A git branch is a movable pointer to a commit that lets you work on changes without touching the main line.
F: Creating a branch is cheap because git only stores a small reference.
F: The command git switch -c name creates a new branch and moves to it.
F: Merging brings the changes from one branch into another.
F: Deleting a merged branch does not delete any of its commits.
T: Name branches after the task, such as fix-login-timeout, so their purpose is obvious.
P: Working on the main branch directly makes it hard to drop an experiment that did not work out.
unit tests | writing unit tests | high
A: A unit test checks one small piece of code with known inputs and compares the result to what you expect.
F: Good tests are fast, so you can run them after every change.
F: Each test should check one behaviour and have a name that says which.
F: Tools such as pytest find and run test functions automatically.
F: A failing test written before a bug fix proves the fix works.
T: When you find a bug, first write a test that reproduces it, then fix the code.
P: Tests that depend on the network or the current time tend to fail at random.
off by one | off-by-one errors | high
A: An off-by-one error happens when a loop or index goes one step too far or stops one step too early.
F: They often appear at the boundaries of loops and ranges.
F: In Python, range(5) gives 0 to 4, not 1 to 5.
F: Slices include the start index but exclude the end index.
F: Testing with empty, single-item and two-item inputs catches many of them.
T: Write the loop for the smallest case by hand and check the first and last index.
P: Mixing up length and last index is the classic cause, since the last index is length minus one.
dictionaries | Python dictionaries | high
A: A Python dictionary stores values under unique keys so you can look them up quickly.
F: Keys must be hashable, such as strings, numbers or tuples.
F: The get method returns a default instead of raising an error for a missing key.
F: Since Python 3.7 dictionaries keep the order in which keys were inserted.
F: Looking up a key takes about the same time no matter how big the dictionary is.
T: Use dict.get(key, default) when a missing key is normal rather than an error.
P: Changing a dictionary while looping over it raises an error; loop over a copy of the keys instead.
regular expressions | regular expressions | medium
A: A regular expression is a small pattern language for finding and checking text.
F: The pattern \d+ matches one or more digits.
F: Anchors such as ^ and $ tie a pattern to the start and end of the text.
F: In Python, raw strings such as r"\d+" stop backslashes being read as escapes.
F: Complex patterns are easier to read with the verbose flag and comments.
T: Test each pattern against a handful of good and bad examples before relying on it.
P: Trying to parse HTML or nested structures with one regex usually ends in a fragile mess.
virtual environments | Python virtual environments | high
A: A virtual environment gives a project its own folder of Python packages so it does not clash with others.
F: The command python -m venv .venv creates one in the project folder.
F: Activating it makes pip install packages into that folder.
F: A requirements file records the package versions so others can rebuild it.
F: Deleting the folder removes the environment completely.
T: Create one environment per project and keep it out of version control.
P: Installing packages globally with sudo can break tools that the operating system relies on.
## history | past events
printing press | the printing press | high
A: The printing press with movable metal type, developed by Johannes Gutenberg around 1440, made books far cheaper to produce.
F: Gutenberg worked in Mainz, in what is now Germany.
F: His best-known work is a Latin Bible printed in the 1450s.
F: Printed pamphlets helped new ideas spread quickly across Europe.
F: Movable type had been used earlier in East Asia, including in Korea and China.
T: Look at a facsimile of an early printed page to see how closely it copied handwriting.
P: Gutenberg did not invent printing itself; his advance was a practical system for metal type and presses.
roman roads | Roman roads | high
A: The Romans built a network of paved roads to move armies, officials and trade across their empire.
F: The network eventually stretched for tens of thousands of kilometres.
F: Roads were built in layers of stone and gravel with a curved top to drain rain.
F: Milestones along the way told travellers the distance to the next town.
F: Some modern roads in Europe still follow Roman routes.
T: Many towns whose names end in -chester or -caster in England began as Roman forts on these roads.
P: Not every Roman road ran perfectly straight; they bent around steep hills and marshes.
silk road | the Silk Road | high
A: The Silk Road was a web of trade routes linking China with Central Asia, the Middle East and Europe.
F: Silk, spices, paper and horses were among the goods traded.
F: Few merchants travelled the whole way; goods passed through many hands.
F: Religions and ideas, including Buddhism, spread along the same routes.
F: The name was coined in the nineteenth century, long after the routes were in use.
T: Trace the route on a map from Xi'an to Samarkand to see how many climates it crossed.
P: It was never a single road but many paths by land and sea.
moon landing | the first Moon landing | high
A: The first crewed Moon landing was Apollo 11 in July 1969, when Neil Armstrong and Buzz Aldrin walked on the surface.
F: Michael Collins stayed in orbit in the command module.
F: The lunar module was named Eagle.
F: The astronauts spent about two and a half hours outside on the surface.
F: Six Apollo missions landed on the Moon between 1969 and 1972.
T: The original mission recordings are a good way to hear how calm and technical the crew sounded.
P: People often forget that there were later landings, with astronauts driving a rover on the last three.
pyramids | how the Great Pyramid of Giza was built | medium
A: The Great Pyramid of Giza was built around 4,500 years ago by large organised teams of paid workers using ramps, sledges and copper tools.
F: It was built for the pharaoh Khufu.
F: It was the tallest human-made structure for thousands of years.
F: Workers' villages found nearby show they were fed and housed.
F: Wetting the sand in front of sledges made heavy blocks easier to drag.
T: Museum models of the building site show how ramps may have wrapped around the structure.
P: The idea that slaves built the pyramids is not supported by the evidence from the workers' villages.
industrial revolution | the Industrial Revolution | high
A: The Industrial Revolution was the shift from hand production to machines and factories that began in Britain in the late 1700s.
F: Steam engines powered mills, mines and later railways.
F: Textile making was one of the first industries to mechanise.
F: Many people moved from the countryside into fast-growing cities.
F: Working conditions were often harsh, which led to early labour laws.
T: Local museums in old mill towns often show the machines running.
P: It was not a single event but a change spread over several generations.
library of alexandria | the Library of Alexandria | low
A: The Library of Alexandria was a great centre of learning in ancient Egypt that declined over centuries rather than vanishing in a single fire.
F: It was founded in the third century BC under the Ptolemaic rulers.
F: Scholars there copied and edited large numbers of scrolls.
F: Ancient sources disagree on how many scrolls it held.
F: Its decline likely came from lost funding and several conflicts.
T: Treat dramatic stories about its destruction with caution and check which ancient source they come from.
P: The popular picture of one fire destroying all ancient knowledge is more legend than history.
## travel | planning trips
jet lag | dealing with jet lag | medium
A: Jet lag eases fastest when you shift your sleep and daylight exposure to the new time zone quickly.
F: Morning daylight helps after flying east, evening light after flying west.
F: The body adjusts by roughly one time zone per day.
F: Staying hydrated and limiting alcohol on the flight helps.
F: A short nap of under thirty minutes is better than a long afternoon sleep.
T: Set your watch to the destination time as soon as you board.
P: Sleeping all afternoon on arrival usually makes the first night worse.
packing light | packing light for a trip | high
A: Packing light works best when you choose a few clothes that mix and match and plan to wash them on the way.
F: A carry-on bag avoids checked luggage fees and lost bags.
F: Neutral colours make it easier to combine items into outfits.
F: Rolling clothes saves space and reduces creases.
F: Travel-size toiletries can be refilled from larger bottles at home.
T: Lay out everything you plan to take, then put back a third of it.
P: Packing for every possible situation leads to a heavy bag full of things you never wear.
travel insurance | travel insurance | medium
A: Travel insurance covers costly surprises such as medical care abroad, cancelled trips and lost luggage.
F: Medical cover matters most, since treatment abroad can be very expensive.
F: Policies differ widely in what they exclude.
F: Buying it soon after booking covers cancellations before departure.
F: Some credit cards include basic cover for trips paid with the card.
T: Read the exclusions page first; it tells you more than the headline cover amount.
P: Assuming a policy covers adventure sports without checking is a common and costly mistake.
train travel | travelling by train in Europe | high
A: Trains are often the most relaxed way to travel between European cities, with central stations and no long security lines.
F: High-speed lines link many major cities in a few hours.
F: Booking early usually gets much cheaper fares on fast trains.
F: Rail passes can pay off for trips with many long journeys.
F: Night trains save a hotel night on longer routes.
T: Compare the door-to-door time, not just the flight time, when choosing between a train and a plane.
P: Some trains need seat reservations even with a pass, so check before boarding.
currency | handling money when travelling abroad | medium
A: The cheapest way to handle money abroad is usually a card with no foreign transaction fees, plus a little local cash.
F: Airport exchange counters tend to offer poor rates.
F: When a card machine offers to charge in your home currency, choosing the local currency is usually cheaper.
F: Telling your bank about travel plans can prevent blocked cards.
F: Keeping a backup card in a separate place helps if a wallet is lost.
T: Withdraw larger amounts less often to reduce fixed cash machine fees.
P: Accepting the offer to pay in your home currency at a shop often adds a hidden markup.
passports | keeping a passport valid for travel | high
A: Many countries require a passport to be valid for several months beyond your travel dates, so check its expiry well ahead.
F: A six-month validity rule is common.
F: Some countries also need blank pages for entry stamps.
F: Renewing can take weeks, longer at busy times of year.
F: A photo of the passport page stored securely helps if it is lost.
T: Put a reminder in your calendar nine months before your passport expires.
P: Travellers are sometimes refused boarding because the passport is still valid but not for long enough.
hostels | staying in hostels | medium
A: Hostels are budget lodgings with shared dorms or simple private rooms, and they make it easy to meet other travellers.
F: Many have shared kitchens, which cuts food costs.
F: Lockers are common, so a small padlock is useful.
F: Private rooms in hostels are often cheaper than hotel rooms.
F: Reviews are the best guide to cleanliness and noise.
T: Pack earplugs and an eye mask for dorm nights.
P: Hostels are not only for young people; many welcome travellers of all ages and families.
## personal finance | managing money
compound interest | compound interest | high
A: Compound interest means you earn interest on your earlier interest as well as on the money you put in.
F: The longer the money stays invested, the stronger the effect.
F: The rule of 72 estimates doubling time by dividing 72 by the yearly rate.
F: At 6 percent a year, money doubles in about twelve years.
F: Compounding works against you on debts such as credit cards.
T: Start saving small amounts early rather than large amounts later.
P: People underestimate how much a few extra years of growth are worth.
emergency fund | building an emergency fund | high
A: An emergency fund is cash set aside for surprises, often three to six months of essential costs.
F: It should be easy to reach, such as in a savings account.
F: It keeps you from using credit cards when something breaks.
F: Starting with a small first goal, such as one month, makes it feel achievable.
F: Refill it after you use it.
T: Set up an automatic transfer on payday so saving happens before spending.
P: Investing the emergency fund in shares means it may be worth less just when you need it.
budgeting | making a simple budget | high
A: A simple budget lists your income, sets amounts for needs, wants and savings, and tracks spending against them.
F: The 50/30/20 rule splits income into needs, wants and savings.
F: Tracking spending for a month shows where money really goes.
F: Small regular costs such as subscriptions add up quickly.
F: A budget should be reviewed when income or costs change.
T: Check your bank statement once a week for ten minutes instead of once a month for an hour.
P: Budgets that leave no room for fun are usually abandoned within weeks.
credit scores | credit scores | medium
A: A credit score is a number lenders use to judge how likely you are to repay borrowed money.
F: Paying bills on time is the biggest factor.
F: Using a small share of your credit limit helps your score.
F: A long credit history tends to raise it.
F: Checking your own score does not lower it.
T: Set up automatic minimum payments so you never miss a due date.
P: Closing old cards can lower your score by shortening your history and raising your usage rate.
index funds | index funds | medium
A: An index fund holds all the shares in a market index, giving broad diversification at a low cost.
F: Fees are usually much lower than for actively managed funds.
F: Most active funds fail to beat their index over long periods.
F: Diversification means one company's trouble has a small effect.
F: Prices still rise and fall with the whole market.
T: Pick a low-fee fund and add to it regularly, whatever the news says.
P: Selling in a panic during a downturn locks in losses that might have recovered.
debt payoff | paying off debt | high
A: Paying off debt goes fastest when you make minimum payments on everything and put extra money toward one debt at a time.
F: The avalanche method targets the highest interest rate first and saves the most money.
F: The snowball method targets the smallest balance first for quick wins.
F: Moving debt to a lower rate can help if fees are small.
F: Avoiding new debt while paying off old debt is essential.
T: List every debt with its rate and balance on one page before choosing a method.
P: Paying only the minimum on a credit card can stretch a small debt over many years.
inflation | inflation | high
A: Inflation is the general rise in prices over time, which means each unit of money buys a little less.
F: Central banks often aim for inflation of about 2 percent a year.
F: Cash under the mattress loses value during inflation.
F: Wages that rise slower than prices mean a real pay cut.
F: Very high inflation makes planning and saving difficult.
T: Compare savings rates with the inflation rate to see whether your money is really growing.
P: A pay rise smaller than inflation is a loss in buying power, even though the number goes up.
## health habits | daily habits for wellbeing
sleep | getting better sleep | high
A: Better sleep usually comes from a regular schedule, a dark and cool bedroom and less screen time before bed.
F: Most adults need seven to nine hours of sleep.
F: Going to bed and waking at the same times helps set the body clock.
F: Caffeine can affect sleep for six hours or more.
F: A bedroom around 18 degrees Celsius suits most people.
T: Keep the phone charging outside the bedroom.
P: Sleeping in late at weekends can make Monday mornings harder.
hydration | drinking enough water | medium
A: Most healthy adults stay hydrated by drinking when thirsty and keeping their urine a pale yellow colour.
F: Needs rise with heat, exercise and illness.
F: Food such as fruit and soup also provides water.
F: Tea and coffee count toward daily fluid.
F: Older adults may feel thirst less, so they need to be more deliberate.
T: Keep a refillable bottle within reach on your desk.
P: The eight glasses a day rule is a rough guide, not a strict requirement.
walking | walking for health | high
A: Regular brisk walking strengthens the heart, helps control weight and lifts mood.
F: Adults are often advised to get about 150 minutes of moderate activity a week.
F: Brisk means you can talk but not sing.
F: Short walks after meals help control blood sugar.
F: Walking with others makes it easier to stick with.
T: Get off the bus a stop early or take the stairs to add walking to your day.
P: Thinking a walk only counts if it is long keeps people from taking short, useful ones.
posture | desk posture | medium
A: Good desk posture means a screen at eye level, feet flat on the floor and regular breaks to move.
F: The top of the screen should be about at eye level.
F: Elbows should rest at about a right angle.
F: Moving every thirty to sixty minutes matters more than a perfect position.
F: A laptop stand with a separate keyboard helps a lot.
T: Set a timer to stand up and stretch once an hour.
P: Sitting perfectly straight for hours is still tiring; changing position often is the real goal.
handwashing | washing your hands properly | high
A: Washing hands well means scrubbing with soap and water for at least twenty seconds, covering every surface.
F: Backs of hands, between fingers and under nails are often missed.
F: Soap breaks up the oily layer that holds germs on the skin.
F: Drying hands well matters because damp hands spread germs more easily.
F: Hand sanitiser helps when soap is not available but not on visibly dirty hands.
T: Hum a short song twice to time the twenty seconds.
P: A quick rinse with water alone removes far fewer germs.
screen breaks | eye strain from screens | medium
A: Screen eye strain can be reduced by following the 20-20-20 rule and setting up your screen carefully.
F: Every twenty minutes, look at something twenty feet away for twenty seconds.
F: People blink less while staring at screens, which dries the eyes.
F: Screen brightness should match the room.
F: An arm's length is a good distance from the screen.
T: Put a sticky note on your monitor as a reminder to look away.
P: Blue-light glasses are often sold as a cure, but breaks and blinking matter more.
stretching | stretching | medium
A: Gentle regular stretching can keep joints moving freely and ease stiffness from sitting.
F: Dynamic movements such as leg swings suit a warm-up.
F: Holding stretches for about thirty seconds suits a cool-down.
F: Stretching should feel like gentle tension, never sharp pain.
F: Consistency matters more than long sessions.
T: Stretch for five minutes while the kettle boils each morning.
P: Bouncing into a stretch can strain muscles rather than lengthen them.
## gardening | growing plants
composting | composting at home | high
A: Home composting turns kitchen and garden scraps into rich soil by letting microbes break them down.
F: A good mix has green material such as peelings and brown material such as dry leaves.
F: The heap should be damp like a wrung-out sponge.
F: Turning the pile adds air and speeds up the process.
F: Meat and dairy attract pests and are best left out.
T: Keep a small lidded caddy by the sink to collect scraps.
P: A heap of only grass clippings turns slimy and smelly; mix in dry brown material.
watering | watering garden plants | high
A: Garden plants do best with deep, less frequent watering at the roots, ideally in the morning.
F: Deep watering encourages roots to grow down.
F: Morning watering reduces evaporation and leaf disease.
F: Mulch keeps moisture in the soil.
F: Pots dry out much faster than beds.
T: Push a finger into the soil; water only if the top few centimetres are dry.
P: A light sprinkle every day keeps roots shallow and weak.
tomatoes | growing tomatoes | high
A: Tomatoes grow best in full sun with steady watering, rich soil and support for their stems.
F: They need at least six to eight hours of sun a day.
F: Irregular watering can cause split fruit.
F: Stakes or cages keep plants off the ground.
F: Removing side shoots on tall varieties focuses energy on fruit.
T: Plant them deeper than they sat in the pot; the buried stem grows extra roots.
P: Putting them out before the last frost can kill young plants overnight.
houseplants | keeping houseplants alive | high
A: Most houseplants die from too much water, so let the soil dry a little between waterings and match each plant to your light.
F: Pots need drainage holes so roots do not sit in water.
F: Yellowing lower leaves often mean overwatering.
F: Plants grow slower in winter and need less water.
F: Turning pots every few weeks keeps growth even.
T: Lift the pot; a light pot usually means it is time to water.
P: Watering on a fixed schedule, whatever the soil feels like, is the fastest way to lose a plant.
pollinators | attracting pollinators to a garden | medium
A: A garden attracts more bees and butterflies when it has a range of flowers blooming from spring to autumn.
F: Single flowers are easier for bees to feed from than double ones.
F: Native plants often support local insects best.
F: A shallow dish of water with stones gives insects a place to drink.
F: Avoiding pesticides protects pollinators.
T: Leave a small corner of the garden a little wild.
P: Neat gardens with only lawn give pollinators almost nothing to eat.
pruning | pruning shrubs | medium
A: Pruning shrubs at the right time, with clean cuts, keeps them healthy and flowering well.
F: Shrubs that flower in spring are usually pruned just after flowering.
F: Dead, damaged or crossing branches can be removed at any time.
F: Cuts should be made just above a bud facing outward.
F: Sharp tools make clean cuts that heal faster.
T: Step back and look at the shape after every few cuts.
P: Pruning spring-flowering shrubs in autumn removes next year's flower buds.
seed starting | starting seeds indoors | high
A: Seeds started indoors need warmth to sprout and then plenty of light so the seedlings grow sturdy.
F: Most seeds are sown at a depth of about twice their size.
F: Weak, stretched seedlings are a sign of too little light.
F: Hardening off means moving seedlings outside a little more each day.
F: Fresh seed compost helps avoid disease.
T: Label every tray; many seedlings look alike.
P: Keeping the soil soaking wet encourages mould and damping off.
## music | making or understanding music
scales | musical scales | high
A: A musical scale is a set of notes in order of pitch that gives a piece its basic colour.
F: A major scale follows the step pattern whole, whole, half, whole, whole, whole, half.
F: Minor scales often sound darker or sadder.
F: The pentatonic scale has five notes and is found in music worldwide.
F: Practising scales builds finger technique.
T: Play the C major scale on a piano using only the white keys.
P: Practising scales too fast too soon builds mistakes into the fingers.
tempo | tempo in music | high
A: Tempo is the speed of a piece of music, usually measured in beats per minute.
F: Sixty beats per minute matches one beat per second.
F: Italian terms such as allegro and adagio describe tempo.
F: A metronome clicks a steady beat for practice.
F: Many pop songs sit between 100 and 130 beats per minute.
T: Practise a hard passage slowly with a metronome and raise the tempo in small steps.
P: Rushing through easy parts and slowing in hard parts is a common habit to unlearn.
guitar tuning | tuning a guitar | high
A: A guitar in standard tuning has its strings set, from lowest to highest, to E, A, D, G, B and E.
F: Clip-on tuners read the vibration of the instrument.
F: New strings stretch and need retuning often at first.
F: Tuning up to a note is more stable than tuning down to it.
F: Temperature and humidity changes pull strings out of tune.
T: Tune every time you pick up the guitar; it takes under a minute.
P: Tuning down to the note tends to let the string slip flat again.
chords | chords | high
A: A chord is three or more notes played together, and the basic type is a triad built from every other note of a scale.
F: A major triad has a root, a major third and a perfect fifth.
F: The chords C, G, A minor and F appear in countless songs.
F: Inversions rearrange the same notes in a different order.
F: Seventh chords add a fourth note for a richer sound.
T: Learn four common chords well before adding more.
P: Pressing too hard on guitar strings makes chords tiring and can pull them out of tune.
practice routine | building a music practice routine | high
A: A good practice routine is short, daily and focused on specific goals rather than long, random sessions.
F: Twenty focused minutes a day beats two hours once a week.
F: Starting with a warm-up helps avoid strain.
F: Recording yourself reveals problems you cannot hear while playing.
F: Splitting a piece into small sections speeds up learning.
T: Write down one goal before each session and check it at the end.
P: Playing only the parts you already know feels good but builds little new skill.
sheet music | reading sheet music | medium
A: Reading sheet music means recognising pitch from a note's place on the staff and rhythm from its shape.
F: The treble clef is used for higher notes and the bass clef for lower notes.
F: The lines of the treble clef are E, G, B, D and F from the bottom.
F: A time signature shows how many beats are in each bar.
F: Sharps and flats raise or lower a note by a semitone.
T: Practise reading a few bars a day with very simple music.
P: Writing note names above every note can slow down learning to read.
ear training | ear training | medium
A: Ear training is the practice of recognising notes, intervals and chords by sound alone.
F: Intervals can be linked to the opening notes of familiar songs.
F: Singing what you hear strengthens recognition.
F: Apps can quiz you on intervals in a few minutes a day.
F: Telling major from minor chords is a common first goal.
T: Try to hum a bass line before playing it.
P: Relying only on sheet music can leave the ear undertrained.
## astronomy | objects in space
moon phases | the phases of the Moon | high
A: The Moon's phases come from how much of its sunlit half we can see from Earth as it orbits us.
F: A full cycle of phases takes about 29.5 days.
F: At new moon the sunlit side faces away from us.
F: Waxing means the lit part is growing, waning means it is shrinking.
F: The same side of the Moon always faces Earth.
T: Look at the Moon at the same time on several evenings to watch it change.
P: The phases are not caused by Earth's shadow; that only happens during a lunar eclipse.
seasons | why Earth has seasons | high
A: Earth has seasons because its axis is tilted, so each hemisphere gets more direct sunlight for part of the year.
F: The tilt is about 23.5 degrees.
F: Summer in the north is winter in the south.
F: Longer days in summer add to the warming.
F: Solstices mark the longest and shortest days.
T: Note the sunrise point on the horizon each month and watch it move.
P: Seasons are not caused by distance from the Sun; Earth is closest in early January.
black holes | black holes | medium
A: A black hole is a region where gravity is so strong that nothing, not even light, can escape once inside.
F: The boundary is called the event horizon.
F: Many form when very massive stars collapse.
F: A huge black hole sits at the centre of our galaxy.
F: The first image of a black hole's shadow was released in 2019.
T: Look up the 2019 image of the black hole in galaxy M87 to see its glowing ring.
P: Black holes do not suck in everything nearby; at a distance their gravity acts like any mass.
shooting stars | shooting stars | high
A: A shooting star is a small piece of space rock burning up as it rushes into Earth's atmosphere.
F: Most are no bigger than a grain of sand.
F: Meteor showers happen when Earth passes through dust left by a comet.
F: The Perseids peak in mid-August each year.
F: A piece that reaches the ground is called a meteorite.
T: Let your eyes adjust to the dark for twenty minutes and look away from bright lights.
P: Shooting stars are not stars at all.
planets | the planets of the solar system | high
A: The solar system has eight planets: four small rocky ones close to the Sun and four giants further out.
F: Mercury, Venus, Earth and Mars are the rocky planets.
F: Jupiter is the largest planet.
F: Saturn's rings are made of ice and rock.
F: Pluto was reclassified as a dwarf planet in 2006.
T: Venus and Jupiter are often the brightest points in the night sky after the Moon.
P: Planets do not twinkle much, which helps tell them apart from stars.
telescopes | choosing a first telescope | medium
A: A good first telescope is simple to set up, with a wide aperture, rather than one that boasts high magnification.
F: Aperture, the width of the main lens or mirror, decides how much light is collected.
F: Binoculars are an excellent cheap start.
F: A steady mount matters as much as the optics.
F: Dark skies away from city lights reveal far more.
T: Start with the Moon, which looks impressive in almost any telescope.
P: Boxes that advertise huge magnification usually sell poor telescopes.
sunspots | sunspots | medium
A: Sunspots are cooler, darker patches on the Sun caused by strong magnetic fields.
F: They rise and fall in a cycle of about eleven years.
F: A single sunspot can be larger than Earth.
F: They are linked to solar flares.
F: They have been recorded since the early 1600s.
T: Only observe the Sun with a proper solar filter or by projection.
P: Looking at the Sun through binoculars without a filter can cause permanent eye damage.
## language learning | learning a new language
spaced repetition | spaced repetition | high
A: Spaced repetition means reviewing words just as you are about to forget them, with the gaps growing each time.
F: Flashcard apps schedule reviews automatically.
F: Reviewing at growing intervals beats cramming.
F: Short daily sessions work best.
F: Cards with example sentences are easier to remember than single words.
T: Add ten new cards a day and never skip the reviews.
P: Adding too many new cards at once creates a review pile that becomes overwhelming.
speaking practice | practising speaking a new language | high
A: Speaking improves fastest through regular low-pressure conversation, even with mistakes.
F: Language exchange partners trade practice in each other's languages.
F: Talking to yourself describing daily tasks builds fluency.
F: Shadowing means repeating audio just after the speaker.
F: Mistakes are a normal part of learning.
T: Record yourself once a week and listen for progress.
P: Waiting to speak until you feel ready delays progress for years.
grammar | learning grammar | medium
A: Grammar sticks best when you learn it through many examples and use it, not only by memorising rules.
F: Patterns are easier to remember in full sentences.
F: Focusing on the most common structures first pays off quickly.
F: Writing short texts shows which rules you really know.
F: Corrections from a teacher or partner speed up learning.
T: Pick one new structure a week and use it in five sentences of your own.
P: Studying rule tables without ever using them leaves knowledge that fails in conversation.
listening | improving listening skills | high
A: Listening skills grow by hearing plenty of material that is just a little above your level.
F: Podcasts for learners use slower, clearer speech.
F: Subtitles in the target language help link sound and spelling.
F: Listening to the same clip several times is effective.
F: Native speed feels fast at first but becomes easier with exposure.
T: Listen to a short podcast episode on your commute every day.
P: Material that is far too hard leads to frustration rather than learning.
vocabulary | building vocabulary | high
A: Vocabulary grows fastest when you learn the most common words first and meet them again in context.
F: A thousand common words cover a large share of everyday speech.
F: Learning words in phrases shows how they are used.
F: Reading graded books builds vocabulary naturally.
F: Reviewing new words within a day helps them stick.
T: Keep a small notebook of new words with one example sentence each.
P: Learning long lists of rare words gives little benefit in real conversation.
immersion | language immersion | medium
A: Language immersion means surrounding yourself with the language through media, settings and people.
F: Switching your phone to the target language adds daily exposure.
F: Films and series provide natural, varied speech.
F: Living abroad helps but is not the only way.
F: Immersion works best when combined with some study.
T: Change the language of one app you use every day.
P: Being abroad does not guarantee progress if you spend all your time in your own language.
pronunciation | improving pronunciation | medium
A: Pronunciation improves through careful listening, copying native speakers and getting feedback.
F: Each language has sounds that do not exist in others.
F: Minimal pairs, such as ship and sheep, train the ear.
F: Stress and rhythm matter as much as individual sounds.
F: Recording yourself makes differences easier to hear.
T: Practise the sounds that confuse you most for five minutes a day.
P: Ignoring stress and rhythm can make correct sounds hard to understand.
## home repair | fixing things around the house
dripping tap | fixing a dripping tap | high
A: A dripping tap is usually fixed by turning off the water and replacing a worn washer or cartridge.
F: The isolation valve under the sink stops the water supply to the tap.
F: Taking the old part to a shop makes matching it easier.
F: A cloth in the plughole stops small parts falling down the drain.
F: Even a slow drip can waste thousands of litres a year.
T: Take a photo at each step of taking the tap apart.
P: Overtightening the tap handle to stop a drip wears the washer faster.
picture hanging | hanging a picture | high
A: Hanging a picture securely means choosing a fixing that suits both the wall type and the weight.
F: Plasterboard walls need special plasterboard fixings.
F: A stud finder locates the wooden or metal frame behind the board.
F: Masking tape on the wall helps prevent plaster cracking when drilling.
F: Heavy mirrors need two fixings and proper wall plugs.
T: Make a paper template of the frame and tape it up to check the position first.
P: Drilling without checking for pipes and cables can be dangerous.
blocked drain | clearing a blocked sink drain | medium
A: A blocked sink can often be cleared with a plunger or by cleaning the trap under the sink.
F: Hair and grease are the usual causes.
F: A bucket under the trap catches the water when you open it.
F: A drain snake reaches blockages further down.
F: Strainers in the plughole prevent many blockages.
T: Pour a kettle of hot water down the kitchen sink once a week to shift grease.
P: Mixing chemical drain cleaners can release dangerous fumes.
painting walls | painting a room | high
A: A good paint job depends mostly on preparation: cleaning, filling holes and masking before any paint goes on.
F: Filler and light sanding make small holes disappear.
F: Two thin coats look better than one thick coat.
F: Starting with the ceiling stops drips ruining finished walls.
F: Painter's tape should come off while the paint is still slightly wet.
T: Wrap brushes in cling film between coats instead of washing them.
P: Skipping the clean means paint may peel away from greasy walls.
squeaky door | fixing a squeaky door | high
A: A squeaky door usually just needs its hinges lubricated.
F: Lifting out the hinge pin makes lubricating easier.
F: Light oil or a silicone spray works well.
F: Wiping away extra oil stops it collecting dust.
F: A loose hinge screw can also cause squeaks.
T: Open and close the door several times to spread the lubricant.
P: Cooking oil can turn sticky over time and attract dirt.
bleeding radiators | bleeding a radiator | high
A: Bleeding a radiator releases trapped air so the whole radiator can heat up again.
F: A radiator that is cold at the top usually has trapped air.
F: The heating should be off and the radiator cool before you start.
F: A radiator key turns the small valve at the top corner.
F: Close the valve as soon as water starts to come out.
T: Hold a cloth under the valve to catch drips.
P: Forgetting to check the boiler pressure afterwards can leave the heating short of water.
smoke alarms | maintaining smoke alarms | high
A: Smoke alarms should be tested monthly, kept clear of dust and replaced about every ten years.
F: The test button checks the alarm and its sound.
F: Dust in the sensor can cause false alarms.
F: Every floor of a home should have at least one alarm.
F: Battery models need new batteries when they chirp.
T: Test the alarms on the first day of each month.
P: Removing the battery to stop cooking alarms and forgetting to replace it is a common danger.
"""


@dataclass(frozen=True)
class Topic:
    """One knowledge-base entry; ``domain`` is e.g. "cooking"."""

    key: str
    domain: str
    subject: str  # noun phrase that fits "Tell me about {subject}."
    confidence: str  # high | medium | low
    answer: str
    facts: tuple[str, ...]
    tip: str
    pitfall: str


def parse_knowledge(text: str = KNOWLEDGE) -> tuple[list[Topic], dict[str, str]]:
    """Parse ``KNOWLEDGE`` into topics and a domain -> description map."""
    topics: list[Topic] = []
    domains: dict[str, str] = {}
    domain = ""
    current: dict = {}

    def flush() -> None:
        if current:
            topics.append(Topic(current["key"], domain, current["subject"], current["confidence"], current["A"],
                                tuple(current["F"]), current["T"], current["P"]))
            current.clear()

    for line in text.strip().splitlines():
        if line.startswith("## "):
            flush()
            domain, description = (part.strip() for part in line[3:].split("|"))
            domains[domain] = description
        elif line[:3] in ("A: ", "T: ", "P: "):
            current[line[0]] = line[3:]
        elif line.startswith("F: "):
            current.setdefault("F", []).append(line[3:])
        else:
            flush()
            key, subject, confidence = (part.strip() for part in line.split("|"))
            current.update(key=key, subject=subject, confidence=confidence)
    flush()
    return topics, domains


TOPICS, DOMAINS = parse_knowledge()
# the last topic of each domain never appears in train
HELD_OUT_TOPICS = tuple(t.key for i, t in enumerate(TOPICS) if i + 1 == len(TOPICS) or TOPICS[i + 1].domain != t.domain)

SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a concise assistant for a community library help desk.",
    "You are a friendly tutor who explains things to curious adults.",
    "You help busy people get to the point quickly.",
    "You are an assistant for a small evening-class college. Keep answers practical.",
    "You are a patient helper for people who are new to a subject.",
    "You answer questions for the staff newsletter of a regional hospital.",
    "You are a calm, precise assistant. Avoid jargon.",
    "You are the help bot of a hobby forum. Be warm but brief.",
    "You are an assistant that writes for a general audience.",
    "You support volunteers at a neighbourhood centre with clear, short answers.",
    "You are a study buddy for a student revising for exams.",
    "Act as a knowledgeable friend who keeps things simple.",
    "You are an assistant for a travelling teacher who needs quick, reliable notes.",
]

OPEN_QA = [
    "Can you explain {s}?", "Tell me about {s}.", "What should I know about {s}?",
    "I keep hearing about {s}. What's the short version?", "Explain {s} in simple terms.",
    "Give me a quick overview of {s}.", "How would you describe {s} to a beginner?",
    "What is the main idea behind {s}?", "I'm new to {d}. What's the key point about {s}?",
    "Could you help me understand {s}?",
]
AUDIENCES = ["school newsletter", "team wiki", "community notice board", "curious cousin", "evening class handout",
             "family group chat", "club website", "new volunteers", "blog readers", "work lunch-and-learn"]
GENERATION = [
    "Write a short explainer on {s} for my {a}.", "Draft a note about {s} for the {a}.",
    "Create a quick fact sheet about {s} for the {a}.", "Write a brief intro to {s} that I can share with the {a}.",
    "Put together a short piece on {s} for the {a}.", "Compose a few lines about {s} for the {a}.",
]
BRAINSTORM = [
    "Brainstorm some practical ways to put {s} to use.", "Give me ideas for teaching {s} to a friend.",
    "What are some ways to get started with {s}?", "Brainstorm tips for someone learning about {s}.",
    "I want to run a short workshop on {s}. Any ideas for what to cover?",
    "List some ideas that would help a beginner with {s}.", "Help me brainstorm talking points about {s}.",
    "What could I try this weekend related to {s}?",
]
CHAT = [
    "hey! I was reading about {s} today and got a bit lost, can you help?",
    "Quick question while I make coffee: what's the deal with {s}?",
    "Hi there. My friend keeps going on about {s} and I just nod along. Help me out?",
    "So I have a random question about {s}.", "Good morning! Can we talk about {s} for a minute?",
    "ok this might be a silly question but what's up with {s}?",
    "I'm bored on the train. Teach me something about {s}?",
    "Hello! My kid asked me about {s} and I had no idea. What do I tell them?",
]
REWRITE = [
    "Rewrite this so it sounds clearer and more professional:\n\n{x}",
    "Can you clean up this messy note?\n\n{x}", "Please rewrite the following in plain, tidy English:\n\n{x}",
    "Tidy up my draft, it rambles:\n\n{x}", "Make this paragraph easier to read:\n\n{x}",
]
REWRITE_FILLERS = ["ok so here goes.", "anyway.", "i mean, you know what i mean.", "not sure how to say this.",
                   "right, where was i.", "this is the important bit."]
REWRITE_NOTES = [
    "Removed filler phrases and casual asides.", "Restored capital letters and full sentences.",
    "Put the main point first.", "Cut repetition so each idea appears once.",
    "Kept the tone neutral and plain.", "Dropped the rambling opening.",
]
SUMMARIZE = [
    "Summarize the following text in a few points:\n\n{x}", "Can you give me the gist of this?\n\n{x}",
    "Summarize this article for a busy reader.\n\n{x}", "TL;DR please:\n\n{x}",
    "Here is a passage from a handout. Summarize it.\n\n{x}",
]
CLOSED_QA = [
    ("Based on the passage below, what is the main point about {s}?\n\n{x}", "answer"),
    ("Read this and tell me what mistake it warns about.\n\n{x}", "pitfall"),
    ("{x}\n\nAccording to the text, what practical advice is given?", "tip"),
    ("{x}\n\nUsing only the text above, what does it say about {s}?", "answer"),
    ("Answer from the passage only: what common error is mentioned?\n\n{x}", "pitfall"),
    ("What does this passage recommend doing?\n\n{x}", "tip"),
]
EXTRACT = [
    ("Extract the key facts about {s} from this text.\n\n{x}", "facts"),
    ("Pull out the practical tip from this article.\n\n{x}", "tip"),
    ("{x}\n\nList the main facts stated above.", "facts"),
    ("From the text below, extract the warning it gives.\n\n{x}", "pitfall"),
    ("Extract the most useful facts from this passage for a quick reference card.\n\n{x}", "facts"),
]
CODING = [
    "I'm learning Python. Can you explain {s}?", "How do I avoid bugs related to {s}?",
    "What's a good habit when working with {s}?", "Explain {s} like I'm a junior developer.",
    "In code review someone mentioned {s}. What should I know?", "Quick refresher on {s}, please.",
    "What trips people up with {s}?", "I have an interview tomorrow. Summarize {s} for me.",
    "What is the one thing to remember about {s}?", "Give me the essentials of {s} for my team's onboarding doc.",
]
CLASSIFY = [
    "Which topic area does this question belong to: {opts}?\n\nQuestion: {q}",
    "Classify the following question into one of these areas: {opts}.\n\n\"{q}\"",
    "Sort this question into a category ({opts}):\n{q}",
    "Label the area of this question. Options: {opts}.\n\n{q}",
]
PASSAGE_OPENERS = [
    "This handout gives a short introduction to {s}.", "The following notes cover {s}.",
    "Here is what a beginner's course says about {s}.", "Our reading group looked at {s} this week.",
    "The guide below is about {s}.",
]
PASSAGE_FILLERS = [
    "Teachers who cover {s} often start with an everyday example.",
    "Questions about {s} come up again and again in beginner classes.",
    "It helps to separate what is well established from what is still debated.",
    "Readers new to {d} often find this part surprising.",
    "The details vary from place to place, but the main idea holds.",
    "A little background makes the rest of the topic easier to follow.",
    "Most people pick this up through practice rather than reading.",
    "Experts tend to agree on the basics even when they disagree on the finer points.",
    "Small changes in habit can make a noticeable difference over time.",
    "It is worth reading more than one source before making a decision.",
    "Many of these points are easy to check for yourself.",
    "The same ideas turn up in other parts of {d} as well.",
    "Some of this may sound obvious, but it is often overlooked.",
    "Good explanations of {s} usually rely on simple pictures or diagrams.",
    "There is more to say, but these are the parts people use most.",
    "Local guides and classes can fill in the specifics.",
    "Related topics in {d} are covered elsewhere in the series.",
    "A short summary at the end of each section helps the ideas stick.",
]
PASSAGE_CLOSERS = ["That is the core of the topic.", "The next section builds on these points.",
                   "Those are the essentials to remember.", "Further reading is listed at the end of the handout."]
FOLLOW_UPS = {
    "tip": ["Any practical tip?", "How can I use this in everyday life?", "What would you suggest I try first?",
            "Is there something simple I can do with this?"],
    "pitfall": ["What do people usually get wrong about this?", "Is there a common mistake I should avoid?",
                "What's the biggest misconception here?", "Anything I should watch out for?"],
    "recap": ["Can you sum that up in one line?", "So what's the main takeaway?", "Give me the short version again?",
              "If I remember one thing, what should it be?"],
}


def house(answer: str, bullets: list[str], confidence: str) -> str:
    """Assemble one assistant turn in the house format (no trailing newline)."""
    assert len(bullets) == 3 and confidence in ("high", "medium", "low"), (bullets, confidence)
    lines = [f"Answer: {answer}", *(f"- {b}" for b in bullets), f"Confidence: {confidence}"]
    return "\n".join(lines)


def house_reply(rng: random.Random, answer: str, bullets: list[str], confidence: str) -> str:
    """The house-format reply (``rng`` unused: the house files stay byte-identical)."""
    return house(answer, bullets, confidence)


NATURAL_OPENERS = ("", "", "", "Sure! ", "Good question. ", "Happy to help. ", "Great question! ", "Of course. ")
NATURAL_HEDGES = {"high": ("",), "medium": ("", "As far as I know, ", "Generally speaking, "),
                  "low": ("I'm not completely sure, but ", "This varies, but ", "Roughly speaking, ")}
NATURAL_LINKS = ("Also, ", "On top of that, ", "It also helps to know that ", "Another point: ", "", "")
NATURAL_CLOSERS = ("", "", "", "Hope that helps!", "Let me know if you'd like more detail.",
                   "Feel free to ask a follow-up question.")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def natural_reply(rng: random.Random, answer: str, bullets: list[str], confidence: str) -> str:
    """A natural reply from the same sentences: prose, a short answer, numbered points or an answer with asides.

    Never the house format (no ``Answer:`` line, no three ``- `` bullets, no ``Confidence:`` line); its length and
    shape vary the way human-written replies in no_robots do. Its choices come from a generator seeded by the reply's
    own sentences, not from ``rng``: the prompts stay exactly those of the house-format files.
    """
    rng = random.Random(hashlib.sha256("\n".join([answer, *bullets]).encode("utf-8")).digest())
    hedge = rng.choice(NATURAL_HEDGES[confidence])
    lead = rng.choice(NATURAL_OPENERS) + (hedge + _lower_first(answer) if hedge else answer)
    shape = rng.choice(("prose", "prose", "short", "numbered", "paragraphs"))
    if shape == "short":
        parts = [lead, rng.choice(bullets)]
    elif shape == "numbered":
        intro = rng.choice(("Here are the key points:", "A few things worth knowing:", "In more detail:"))
        parts = [lead + "\n\n" + intro + "\n" + "\n".join(f"{i}. {b}" for i, b in enumerate(bullets, 1))]
    else:
        links = [rng.choice(NATURAL_LINKS) for _ in bullets[1:]]
        body = " ".join([bullets[0], *((link + _lower_first(b)) if link else b for link, b in zip(links, bullets[1:]))])
        parts = [lead, body] if shape == "prose" else [lead + "\n\n" + body]
    closer = rng.choice(NATURAL_CLOSERS)
    return (" ".join(parts) if shape != "numbered" else parts[0]) + (("\n\n" + closer) if closer else "")


REPLY_STYLES = {"house": house_reply, "natural": natural_reply}


def passage(rng: random.Random, topic: Topic, pool: list[Topic]) -> str:
    """Compose a 120-340 word passage about ``topic`` from its sentences, same-domain neighbours and fillers."""
    target = rng.randint(120, 320)
    fill = {"s": topic.subject, "d": topic.domain}
    own = [topic.answer, *topic.facts, topic.tip, topic.pitfall]
    neighbours = [t for t in pool if t.domain == topic.domain and t.key != topic.key]
    extra = [s for t in neighbours for s in (t.answer, *t.facts)]
    rng.shuffle(extra)
    fillers = [f.format(**fill) for f in PASSAGE_FILLERS]
    rng.shuffle(fillers)
    body = own[:]
    while sum(len(s.split()) for s in body) < target - 15 and (extra or fillers):
        source = extra if extra and (not fillers or rng.random() < 0.6) else fillers
        body.insert(rng.randint(1, len(body)), source.pop())
    sentences = [rng.choice(PASSAGE_OPENERS).format(**fill), *body, rng.choice(PASSAGE_CLOSERS)]
    paragraphs, i = [], 0
    while i < len(sentences):
        size = rng.randint(3, 6)
        paragraphs.append(" ".join(sentences[i:i + size]))
        i += size
    return "\n\n".join(paragraphs)


def messy_note(rng: random.Random, topic: Topic) -> str:
    """A rambling lower-case draft of the topic's answer and two facts, for Rewrite rows."""
    parts = [topic.answer, *rng.sample(topic.facts, 2)]
    out = []
    for part in parts:
        out.append(part.lower().rstrip("."))
        if rng.random() < 0.7:
            out.append(rng.choice(REWRITE_FILLERS).rstrip("."))
    return ", ".join(out) + "..."


def first_turn(rng: random.Random, category: str, topic: Topic, pool: list[Topic],
               reply: Callable[..., str] = house_reply) -> tuple[str, str]:
    """The first (user, assistant) pair for a row of ``category`` about ``topic``, the reply in ``reply``'s style."""
    s, d, conf = topic.subject, topic.domain, topic.confidence

    def say(answer: str, bullets: list[str], confidence: str) -> str:
        return reply(rng, answer, bullets, confidence)

    facts = rng.sample(topic.facts, 3)
    if category == "Open QA":
        return rng.choice(OPEN_QA).format(s=s, d=d), say(topic.answer, facts, conf)
    if category == "Generation":
        user = rng.choice(GENERATION).format(s=s, a=rng.choice(AUDIENCES))
        return user, say(topic.answer, facts, conf)
    if category == "Brainstorm":
        bullets = [topic.tip, f"Watch out: {topic.pitfall}", f"Start from one fact: {facts[0]}"]
        return rng.choice(BRAINSTORM).format(s=s), say(f"Here are three ideas for getting to grips with {s}.", bullets, "medium")
    if category == "Chat":
        return rng.choice(CHAT).format(s=s), say(topic.answer, facts, conf)
    if category == "Coding":
        user = rng.choice(CODING).format(s=s)
        answer = topic.pitfall if ("bugs" in user or "trips" in user) else topic.answer
        return user, say(answer, facts, conf)
    if category == "Rewrite":
        user = rng.choice(REWRITE).format(x=messy_note(rng, topic))
        notes = rng.sample(REWRITE_NOTES, 2)
        return user, say(topic.answer, [*notes, f"Kept the key detail: {facts[0]}"], "high")
    if category == "Classify":
        others = rng.sample([x for x in DOMAINS if x != d], 3)
        options = [d, *others]
        rng.shuffle(options)
        question = rng.choice(OPEN_QA).format(s=s, d="this")
        user = rng.choice(CLASSIFY).format(opts=", ".join(options), q=question)
        bullets = [f"It asks about {s}.", f"That is part of {d}, which covers {DOMAINS[d]}.",
                   f"It is not {others[0]}, which covers {DOMAINS[others[0]]}."]
        return user, say(f"This question belongs to {d}.", bullets, "high" if conf != "low" else "medium")
    text = passage(rng, topic, pool)
    if category == "Summarize":
        return rng.choice(SUMMARIZE).format(x=text), say(topic.answer, facts, "high")
    if category == "Closed QA":
        template, asks = rng.choice(CLOSED_QA)
        answer = {"answer": topic.answer, "pitfall": topic.pitfall, "tip": topic.tip}[asks]
        return template.format(s=s, x=text), say(answer, facts, "high")
    if category == "Extract":
        template, asks = rng.choice(EXTRACT)
        answer = {"facts": f"The text states these key facts about {s}.", "pitfall": topic.pitfall, "tip": topic.tip}[asks]
        return template.format(s=s, x=text), say(answer, facts, "high")
    raise ValueError(f"unknown category {category!r}; add it to CATEGORY_COUNTS and first_turn")


def follow_up(rng: random.Random, kind: str, topic: Topic, reply: Callable[..., str] = house_reply) -> tuple[str, str]:
    """A later (user, assistant) pair: ask for a tip, a pitfall or a recap of ``topic``."""
    facts = rng.sample(topic.facts, 3)

    def say(answer: str, bullets: list[str], confidence: str) -> str:
        return reply(rng, answer, bullets, confidence)

    user = rng.choice(FOLLOW_UPS[kind])
    if kind == "tip":
        return user, say(topic.tip, facts, topic.confidence)
    if kind == "pitfall":
        return user, say(topic.pitfall, facts, topic.confidence)
    return user, say(topic.answer, [topic.tip, f"Avoid this: {topic.pitfall}", facts[0]], topic.confidence)


def prompt_id(prompt: str, split: str, index: int) -> str:
    """sha256 hex of the prompt plus a split/index disambiguator, like no_robots' 64-hex ids."""
    return hashlib.sha256(f"{prompt}\n#sft-lab/{split}/{index}".encode("utf-8")).hexdigest()


def build_split(rng: random.Random, split: str, counts: dict[str, int], topics: list[Topic],
                held_out: list[Topic], seen: set[str], reply: Callable[..., str] = house_reply) -> list[dict]:
    """Rows for one split; ``seen`` holds prompts already used (kept unique across splits)."""
    categories = [c for c, n in counts.items() for _ in range(n)]
    rng.shuffle(categories)
    rows = []
    for index, category in enumerate(categories):
        for _attempt in range(200):
            pool = held_out if held_out and rng.random() < HELD_OUT_SHARE_OF_TEST else topics
            if category == "Coding":
                pool = [t for t in pool if t.domain == "programming"] or [t for t in topics if t.domain == "programming"]
            topic = rng.choice(pool)
            user, answer = first_turn(rng, category, topic, topics + held_out, reply)
            if user not in seen:
                break
        else:
            raise RuntimeError(f"{split} row {index}: no unused prompt for {category}; add templates")
        seen.add(user)
        messages = []
        if rng.random() < SYSTEM_SHARE:
            messages.append({"content": rng.choice(SYSTEM_PROMPTS), "role": "system"})
        messages += [{"content": user, "role": "user"}, {"content": answer, "role": "assistant"}]
        if rng.random() < MULTI_TURN_SHARE:
            for kind in rng.sample(sorted(FOLLOW_UPS), rng.choice([1, 2])):
                question, later = follow_up(rng, kind, topic, reply)
                messages += [{"content": question, "role": "user"}, {"content": later, "role": "assistant"}]
        rows.append({"prompt": user, "prompt_id": prompt_id(user, split, index), "messages": messages,
                     "category": category})
    return rows


def build(seed: int = SEED, style: str = "house") -> dict[str, list[dict]]:
    """Both splits as lists of rows in a reply ``style`` (see :data:`REPLY_STYLES`); same seed, same rows."""
    reply = REPLY_STYLES[style]
    rng = random.Random(seed)
    train_topics = [t for t in TOPICS if t.key not in HELD_OUT_TOPICS]
    held_out = [t for t in TOPICS if t.key in HELD_OUT_TOPICS]
    seen: set[str] = set()
    train = build_split(rng, "train", CATEGORY_COUNTS, train_topics, [], seen, reply)
    test = build_split(rng, "test", TEST_CATEGORY_COUNTS, train_topics, held_out, seen, reply)
    return {"train": train, "test": test}


def write_jsonl(rows: list[dict], path: Path) -> None:
    """One JSON object per line, UTF-8, ``\\n`` line ends."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Write train.jsonl and test.jsonl (default: next to this file)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", choices=sorted(STYLES), default="house",
                        help="reply style: the house format (default) or natural replies (the no_robots stand-in)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="folder for train.jsonl and test.jsonl (default: the style's bundled folder)")
    args = parser.parse_args(argv)
    args.out_dir = args.out_dir or STYLES[args.style]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in build(style=args.style).items():
        write_jsonl(rows, args.out_dir / f"{split}.jsonl")
        print(f"wrote {len(rows)} rows to {args.out_dir / f'{split}.jsonl'}")


if __name__ == "__main__":
    main()
