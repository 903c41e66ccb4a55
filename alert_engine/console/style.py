"""The console's pages' one stylesheet (inline: the pages load nothing). Colours are chosen
for contrast: text at 4.5:1 or better, button and field borders at 3:1 or better against the
page and the cards (the Chromium test computes them)."""

STYLE = """
body{font-family:system-ui,sans-serif;background:#f4f4f6;margin:0;padding:1rem;color:#1d1c1d}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:baseline}
h1{font-size:1.4rem;margin:0 1rem 0 0}.meta{color:#4a4a4a;font-size:.9rem}
form.filters{display:flex;flex-wrap:wrap;gap:.6rem 1rem;align-items:flex-end;background:#fff;
padding:.8rem;border-radius:8px;margin:1rem 0;box-shadow:0 1px 3px #0002}
label{display:flex;flex-direction:column;font-size:.85rem;font-weight:600;gap:.2rem}
input,select{font:inherit;font-weight:400;padding:.35rem;border:1px solid #767676;border-radius:4px;
min-width:7rem}
button{font:inherit;padding:.4rem .9rem;border:1px solid #005c44;border-radius:4px;
background:#007a5a;color:#fff;cursor:pointer}button.plain{background:#fff;color:#1d1c1d;border-color:#767676}
:focus-visible{outline:3px solid #1264a3;outline-offset:2px}
table{border-collapse:collapse;width:100%;background:#fff;border-radius:8px;
box-shadow:0 1px 3px #0002}
caption{text-align:left;font-weight:600;padding:.4rem 0}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
th{font-size:.85rem;color:#4a4a4a}
nav a{display:inline-block;margin:.8rem 1rem 0 0;color:#1264a3}
form.signout{display:inline}
@media (max-width:40rem){
 thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
 table,tbody,tr,td{display:block}tr{border-bottom:2px solid #ccc;padding:.3rem 0}
 td{border:0;padding:.15rem .6rem;display:grid;grid-template-columns:7rem 1fr;gap:.5rem}
 td::before{content:attr(data-label);font-weight:600;color:#4a4a4a}
 label{flex:1 1 9rem}input,select{min-width:0}
}
.card{background:#fff;border-radius:8px;padding:.9rem 1.1rem;margin:1rem 0;
box-shadow:0 1px 3px #0002;max-width:52rem;overflow-wrap:anywhere}
h2{font-size:1.05rem;margin:.1rem 0 .6rem}
dl.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(11rem,1fr));gap:.5rem .9rem;
margin:.4rem 0}dt{font-weight:700}dd{margin:0}
blockquote{border-left:4px solid #767676;margin:.6rem 0;padding:.2rem .8rem;white-space:pre-wrap}
ol.history{padding-left:1.3rem;white-space:pre-wrap}ol.history li{margin:.3rem 0}
.breached{color:#a4000f;font-weight:700}.notice{background:#e8f5e9;border:1px solid #2e7d32;
padding:.5rem .8rem;border-radius:6px;max-width:52rem}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin:.6rem 0}.actions form{margin:0}
textarea{font:inherit;width:100%;box-sizing:border-box;padding:.35rem;border:1px solid #767676;
border-radius:4px}
form.act{display:flex;flex-direction:column;gap:.6rem;align-items:flex-start}
form.act label{width:100%}[hidden]{display:none!important}
a{color:#1264a3}
"""
