package users

import "sync"

// confusableTargets lists, for each Latin letter or digit, the characters of other scripts (and
// Latin's own extensions) that look like it: Unicode's confusables.txt (UTS #39, version
// 14.0.0), restricted to the entries that map one letter or number outside ASCII to one ASCII
// letter or digit and that NFKC leaves unchanged (NFKC already maps full-width, mathematical and
// other compatibility forms). confusables.txt maps capital I to l; its look-alikes are kept
// under I here so that a word in capitals stays that word.
var confusableTargets = map[rune]string{
	'2': "ƧϨᒿꙄꛯꝚ",
	'3': "ƷȜЗӠⳌꝪꞫ𑣊𖼻",
	'4': "Ꮞ𑢯",
	'5': "Ƽ𑢻",
	'6': "бᏮⳒ𑣕",
	'7': "𐓒𑣆",
	'8': "Ȣȣ৪੪𐌚\U0001E8CB",
	'9': "৭੧୨൭ⳊꝮ𑢬𑣌𑣖",
	'A': "ΑАᎪᗅꓮ𐊠𖽀",
	'B': "ΒВᏴᗷꓐꞴ𐊂𐊡𐌁",
	'C': "СᏟⲤꓚ𐊢𐌂𐐕𐔜𑣩𑣲",
	'D': "Ꭰᗞᗪꓓ",
	'E': "ΕЕᎬⴹꓰ𐊆𑢦𑢮",
	'F': "ϜᖴꓝꞘ𐊇𐊥𐔥𑢢𑣂",
	'G': "ԌᏀᏳꓖ",
	'H': "ΗНᎻᕼⲎꓧ𐋏",
	'I': "ƖΙІӀⲒ",
	'J': "ͿЈᎫᒍꓙꞲ",
	'K': "ΚКᏦᛕⲔꓗ𐔘",
	'L': "ᏞᒪⳐꓡ𐐛𐔦𑢣𑢲𖼖",
	'M': "ΜϺМᎷᗰᛖⲘꓟ𐊰𐌑",
	'N': "ΝⲚꓠ𐔓",
	'O': "ΟОՕ\u07C0০ଠ୦ዐⲞⵔ〇ꓳ𐊒𐊫𐐄𐓂𐔖𑓐𑢵𑣠",
	'P': "ΡРᏢᑭⲢꓑ𐊕",
	'Q': "ⵕ",
	'R': "ƦᎡᏒᖇꓣ𐒴𖼵",
	'S': "ЅՏᏕᏚꓢ𐊖𐐠𖼺",
	'T': "ΤТᎢⲦꓔ𐊗𐊱𐌕𑢼𖼊",
	'U': "Սሀᑌꓴ𐓎𑢸𖽂",
	'V': "Ѵ٧۷Ꮩᐯⴸꓦꛟ𐔝𑢠𖼈",
	'W': "ԜᎳᏔꓪ𑣦𑣯",
	'X': "ΧХᚷⲬⵝꓫꞳ𐊐𐊴𐌗𐌢𐔧𑣬",
	'Y': "ΥУҮᎩᎽⲨꓬ𐊲𑢤𖽃",
	'Z': "ΖᏃꓜ𐋵𑢩𑣥",
	'a': "ɑαа",
	'b': "ƄЬᏏᑲᖯ",
	'c': "сᴄⲥꮯ𐐽",
	'd': "ԁᏧᑯꓒ",
	'e': "еҽꬲ",
	'f': "քẝꞙꬵ",
	'g': "ƍɡցᶃ",
	'h': "һհᏂ",
	'i': "ıɩɪιіӏᎥꙇꭵ𑣃",
	'j': "ϳј",
	'l': "ǀ\u05D5\u05DF\u0627١۱\u07CAᛁⵏꓲ𐊊𐌉𐌠𖼨\U0001E8C7",
	'n': "ոռ",
	'o': "οσоօ\u05E1\u0647٥\u06BE\u06C1\u06D5۵०੦૦௦౦೦ഠ൦๐໐ဝ၀ჿᴏᴑⲟꬽ𐐬𐓪𑣈𑣗",
	'p': "ρрⲣ",
	'q': "ԛգզ",
	'r': "гᴦⲅꭇꭈꮁ",
	's': "ƽѕꜱꮪ𐑈𑣁",
	'u': "ʋυսᴜꞟꭎꭒ𐓶𑣘",
	'v': "νѵ\u05D8ᴠꮩ𑜆𑣀",
	'w': "ɯѡԝաᴡꮃ𑜊𑜎𑜏",
	'x': "хᕁᕽ",
	'y': "ɣʏγуүყᶌỿꭚ𑣜",
	'z': "ᴢꮓ𑣄",
}

// confusables maps each look-alike of confusableTargets to its ASCII letter or digit.
var confusables = sync.OnceValue(func() map[rune]rune {
	m := make(map[rune]rune, 400)
	for target, lookalikes := range confusableTargets {
		for _, r := range lookalikes {
			m[r] = target
		}
	}
	return m
})
