const express = require("express");
const greeting = "hello from node";
const app = express();
app.get("/", (req, res) => res.send(`${greeting} release=${process.env.SKIFF_RELEASE}\n`));
app.listen(process.env.PORT, () => console.log(`listening on ${process.env.PORT}`));
